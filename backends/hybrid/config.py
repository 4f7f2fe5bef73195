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
    # being accepted whole (lookup/confidence.acceptance_chance) is at least this; below it
    # the model is asked, and the likelier of the two goes first. Chosen on the development
    # projects with bench/hybrid_study.py (docs/backends.md, "hybrid"): lower thresholds
    # skipped the model where its answer was the likelier, higher ones asked it for nothing.
    # 1 always asks the model.
    lookup_first: float = field(default=0.4, metadata=between(0.0, 1.0))
    # Who goes first. "chance": as above, the lookup where it is sure, else the likelier of
    # the two. "model": the model is always asked and its answer goes first; the lookup's is
    # shown where the model has none in time. "auto": "model" for a local model of at least
    # a billion weights (hybrid/backend.py, MODEL_FIRST_PARAMETERS), else "chance". Chosen on
    # the development projects with bench/hybrid_study.py (its row "model first"): the 0.5B
    # keeps more characters with the lookup first, the 1.5B with itself first
    # (docs/backends.md, "hybrid").
    order: str = field(default="auto", metadata=one_of("auto", "chance", "model"))
    # What a typed keystroke's request shows while the model writes, where the lookup has a
    # suggestion but is not sure of it (the lookup goes first, ``order`` "chance"): "lookup",
    # its suggestion at once, and the model's answer after it where that differs (the server
    # tells the editor to ask again: ghostcomplete/didFindBetter); "nothing", wait for the
    # model. An explicit request (the editor's invoke) always waits. Chosen in the typing
    # replay on the development projects (docs/backends.md, "hybrid"): with the 0.5B,
    # "lookup" kept a larger share of the typed characters on all three seeds, with a lower p95.
    while_waiting: str = field(default="lookup", metadata=one_of("lookup", "nothing"))
