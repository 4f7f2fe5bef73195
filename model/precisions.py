"""The weights an imported graph can hold, in one light module: the importer (which needs the
``convert`` extra) and ``model pull``'s argument parsing (which must not) both read it."""

from __future__ import annotations

PRECISIONS = ("int4", "int8", "fp16", "fp32")
# The precisions ``--calibrate`` (GPTQ) applies to: the block-quantized ones.
CALIBRATED_PRECISIONS = ("int4", "int8")
