"""How far to trust a model's answer: cut it where its own token probabilities say it stops
being likely, and show nothing where even its start is unlikely.

A code model is right more often at the start of a suggestion than at its end: it writes on
past what the user will type (the next line, another argument, a closing comment). A
suggestion is only taken whole, so one wrong token costs all of it.

Greedy decoding records each generated token's probability (backends/onnx/decode.py). The
chance that the first *k* tokens are all what the user types is estimated by a logistic model
over the log of the product of their probabilities (``prefix_chance``), so a power of that
product, squashed: a product of probabilities is not yet a chance, as a small model is
over-confident on some tokens and unsure of others it gets right, and the fit corrects both.
(The number of tokens as a second feature did worse when judged across folds of the
development tasks.)

The suggestion is cut at the token boundary where ``characters × chance`` (what a user is
expected to take) is largest. Cuts are only made where the text does not split a word, leave
a bracket it opened unclosed, or end after an operator or a dot, as the lookup's cut does
(backends/lookup/confidence.py). The backend shows nothing when the chance of the chosen cut
is below ``backend.onnx.minConfidence``.

The weights (``FITS``, per model architecture, and ``SHAPE_FITS`` for a model shape whose
runs called for weights of its own) are fitted on the development projects of the acceptance
benchmark by ``python -m ghostcomplete.bench.model_cut_study --fit RESULTS.json`` and judged on
its test projects (docs/benchmarks.md, "The model's confidence cut").
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

# The logistic model of ``prefix_chance``: weights of (1, log-product of the token
# probabilities), per model architecture (config.json's ``model_type``). A model whose
# architecture has no fit gets no cut and no gate (``calibration_for``). qwen2's was fitted on
# the development projects (Qwen2.5-Coder-0.5B-Instruct int4, context "default") by
# `python -m ghostcomplete.bench.model_cut_study --fit`; Qwen2.5-Coder-1.5B keeps more
# characters with it than with a fit of its own.
FITS: dict[str, tuple[float, ...]] = {"qwen2": (-0.036, 0.914)}
# Weights for one shape of an architecture: (model_type, hidden_size, num_hidden_layers). The
# 0.5B's are fitted on its development runs rounded and calibrated with the 1.5B's beside
# them; steeper than the architecture's (a likely start trusted more, an unlikely one less),
# they keep more characters with the 0.5B, fewer with the 1.5B (bench/RESULTS.md, *The cut's
# fit*).
SHAPE_FITS: dict[tuple[str, int, int], tuple[float, ...]] = {
    ("qwen2", 896, 24): (0.821, 1.53),
}
CALIBRATION = FITS["qwen2"]
# A suggestion does not stop after an operator or a dot: it would leave a statement unfinished.
_DANGLING = tuple("=+-*/%<>&|^~.@!,")
_OPENING = {"(": ")", "[": "]", "{": "}"}
_CLOSING = frozenset(_OPENING.values())
_FLOOR = 1e-12


@dataclass(frozen=True)
class ModelCut:
    """The start of a model's answer worth showing: its text, the estimated chance that the
    user types all of it, and how many generated tokens it covers."""

    text: str
    chance: float
    tokens: int


def calibration_for(config: Mapping[str, object]) -> tuple[float, ...] | None:
    """The fitted weights for the model config.json describes: its shape's, else its
    architecture's; None where there are none."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        return None
    hidden, layers = config.get("hidden_size"), config.get("num_hidden_layers")
    if isinstance(hidden, int) and isinstance(layers, int):
        shaped = SHAPE_FITS.get((model_type, hidden, layers))
        if shaped is not None:
            return shaped
    return FITS.get(model_type)


def prefix_features(log_product: float) -> tuple[float, float]:
    return (1.0, log_product)


def prefix_chance(log_product: float, weights: Sequence[float] = CALIBRATION) -> float:
    """The calibrated chance that the tokens so far, whose probabilities multiply to
    exp(``log_product``), are all what the user types."""
    z = sum(w * x for w, x in zip(weights, prefix_features(log_product), strict=True))
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def cut_points(text: str, ends: Sequence[int]) -> Iterator[tuple[int, int]]:
    """(tokens, characters) of every token boundary where ``text`` may be cut: not inside a
    word, not after an operator, a comma or a dot, not inside a bracket the text opened. The
    whole text is always one (where the model or a stop rule ended it)."""
    opened: list[str] = []
    scanned = 0
    last = -1
    for count, end in enumerate(ends, 1):
        end = min(end, len(text))
        for char in text[scanned:end]:
            if char in _OPENING:
                opened.append(_OPENING[char])
            elif char in _CLOSING and opened and opened[-1] == char:
                opened.pop()
        scanned = max(scanned, end)
        if end >= len(text):
            break
        if end == 0:
            continue
        shown = text[:end].rstrip()
        inside_word = _is_word(text[end - 1]) and _is_word(text[end])
        if inside_word or opened or shown.endswith(_DANGLING) or len(shown) <= last:
            continue
        last = len(shown)  # a cut that only adds blanks shows nothing more
        yield count, end
    yield len(ends), len(text)


def confident_cut(
    text: str,
    ends: Sequence[int],
    chances: Sequence[float],
    weights: Sequence[float] = CALIBRATION,
    min_chars: int = 4,
) -> ModelCut | None:
    """The start of ``text`` most worth showing: where ``len × prefix_chance`` is largest
    among the cut points with at least ``min_chars`` non-blank characters (or all of a
    shorter text); None when the text is blank. ``ends[i]`` is where token ``i`` ends in
    ``text`` and ``chances[i]`` its probability."""
    min_chars = min(min_chars, len(text.strip()))
    logs = [0.0]
    for chance in chances:
        logs.append(logs[-1] + math.log(max(chance, _FLOOR)))
    best: ModelCut | None = None
    best_value = 0.0
    for count, end in cut_points(text, ends):
        shown = text[:end].rstrip()
        if not shown.strip() or len(shown.strip()) < min_chars:
            continue
        chance = prefix_chance(logs[min(count, len(logs) - 1)], weights)
        value = len(shown) * chance
        if best is None or value > best_value:
            best, best_value = ModelCut(shown, chance, count), value
    return best
