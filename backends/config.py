"""Backend settings (the ``backend`` section): which backend, and each backend's options.

Each backend owns its own section class (``backends/http/config.py``,
``backends/onnx/config.py``); completion/settings.py parses them like every other section.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.backends.hybrid.config import HybridSettings
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.setting_checks import between, one_of

KINDS = ("auto", "lookup", "hybrid", "http", "onnx")


@dataclass(frozen=True)
class LookupSettings:
    # Where the lookup backend copies from: "files" = the whole current file, the snippets
    # and the whole recently used files; "prompt" = only what the prompt holds, as a model
    # sees it (the benchmarks use it to measure the snippet choice).
    copy_from: str = field(default="files", metadata=one_of("files", "prompt"))
    # Which of the places that match to copy from: "surroundings" = the longest match plus
    # the similarity of the lines around it; "nearest" = the longest match, in the current
    # file first, nearest the cursor first: the plain lookup that the benchmarks compare the
    # default with (docs/benchmarks.md).
    place: str = field(default="surroundings", metadata=one_of("surroundings", "nearest"))
    # "confidence": cut each suggestion where it stops being likely (backends/lookup/
    # confidence.py); "none": the whole line or block that followed the match.
    cut: str = field(default="confidence", metadata=one_of("confidence", "none"))
    # Show nothing when the estimated chance that the suggestion is accepted whole is lower
    # (lookup/confidence.acceptance_chance, calibrated per language family): the highest gate
    # that keeps nearly all of the characters users accept without a gate, chosen on the
    # development projects of the acceptance benchmark (docs/benchmarks.md). place,
    # cut, minConfidence and fallback apply to the families with fitted weights
    # (lookup/confidence.FITS); the others always get the plain lookup.
    min_confidence: float = field(default=0.12, metadata=between(0.0, 1.0))
    # Where nothing long enough matches (or the best copy is gated out): "ngram" writes the
    # rest of the line from how shorter contexts go on in the same text, shown when its
    # chance is >= 0.5, and before a copy whose chance of acceptance is < 0.3 when its own is
    # >= 0.7 (backends/lookup/ngram.py); "none" shows nothing.
    fallback: str = field(default="ngram", metadata=one_of("ngram", "none"))


@dataclass(frozen=True)
class BackendSettings:
    # "auto": the hybrid with the best installed model whose measured speed fits
    # completion.timeoutMs, else the lookup (backends/hybrid/auto.py).
    kind: str = field(default="auto", metadata=one_of(*KINDS))
    lookup: LookupSettings = field(default_factory=LookupSettings)
    hybrid: HybridSettings = field(default_factory=HybridSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    onnx: OnnxSettings = field(default_factory=OnnxSettings)
