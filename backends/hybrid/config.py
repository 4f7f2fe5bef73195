"""Settings of the hybrid backend (``backend.hybrid``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ghostcomplete.backends.setting_checks import between, one_of


@dataclass(frozen=True)
class HybridSettings:
    # The model asked where the lookup is not sure: "onnx" (with the backend.onnx settings) or
    # "http" (with backend.http).
    model: str = field(default="onnx", metadata=one_of("onnx", "http"))
    # The lookup's suggestion is shown without asking the model when its estimated chance of
    # being accepted whole (lookup/confidence.acceptance_chance) is at least this. On the
    # lookup study's held-out seeds an estimate near 0.3 was accepted whole about 35 % of the
    # time and the estimates above it more often (docs/backends.md, "hybrid"): more than the
    # small code models manage whole; below it the model is asked. 1 always asks the model.
    lookup_first: float = field(default=0.3, metadata=between(0.0, 1.0))
