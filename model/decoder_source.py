"""A decoder read from a source (a GGUF file, a Hugging Face folder), ready to convert.

The readers give the same thing whatever they read: the shape of the model
(``DecoderConfig``), its weights by Hugging Face name as float32 arrays, produced one at a time
when asked for (a dequantized 0.5B model is 2.5 GB; the writer needs one tensor at a time),
the entries config.json gets besides the shape (token ids), and a function that writes the
tokenizer files into the model folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ghostcomplete.model.onnx_decoder import DecoderConfig


class SourceError(ValueError):
    """The source cannot be converted; the message says why, in one line."""


@dataclass(frozen=True)
class DecoderSource:
    config: DecoderConfig
    weights: Mapping[str, np.ndarray]
    # Written into config.json beside the shape: eos_token_id, bos_token_id, ...
    extra_config: dict[str, Any]
    # Writes tokenizer.json and its companions into a folder.
    write_tokenizer: Callable[[Path], None]
    # For the manifest: what was read (the GGUF's file type, its name, ...).
    details: dict[str, Any] = field(default_factory=dict)
    license: str | None = None
