"""``backend.kind: "auto"``: the hybrid with the best installed model this machine runs fast
enough, else the lookup.

An installed model (backends/onnx/installed.py) qualifies when its manifest holds a speed
measured on this machine (``ghostcomplete model measure NAME``; a speed the manifest says was
measured on another machine does not count) and that speed fits the
latency budget: a typical request while typing must take at most ``_BUDGET_SHARE`` of
``completion.timeoutMs``, the rest being left to context, ranking and the lookup. A typical
request is, in the order the manifest can tell it:

- ``keystroke_p95_ms``: the measured 95th percentile of a completion while typing (KV cache
  reuse included), when the measurement has it;
- else ``_KEYSTROKE_PROMPT_TOKENS`` new prompt tokens at ``prompt_tokens_per_s`` (or the speed
  of the longest ``prefill_N_ms`` measured) plus ``_ONE_LINE_TOKENS`` tokens at
  ``decode_tokens_per_s``.

Of the models that qualify, the one with the most parameters (counted from its config.json
as the onnx backend counts them for the hybrid's order; estimated from its size and precision
where config.json lacks a size) wins, then the fastest. A model with no measured speed is
never picked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.config import BackendSettings
from ghostcomplete.backends.onnx.installed import (
    InstalledModel,
    installed_models,
    models_dir,
    parameter_count,
    prompt_tokens_per_s,
    read_json,
    speed_here,
    speed_number,
)

# A keystroke changes the end of the prompt: with the prompt laid out for KV cache reuse
# (at least 90 % of a 2,048-token budget reused, the largest a local model gets), about
# this many tokens are new.
_KEYSTROKE_PROMPT_TOKENS = 256
# A one-line answer.
_ONE_LINE_TOKENS = 16
# The share of completion.timeoutMs a model request may take.
_BUDGET_SHARE = 0.8
_BYTES_PER_PARAMETER = {"int4": 0.5, "int8": 1.0, "fp16": 2.0, "bf16": 2.0, "fp32": 4.0}


@dataclass(frozen=True)
class Chosen:
    """The backend settings to build, and why, in words for the status and the log."""

    settings: BackendSettings
    summary: str


def request_ms(speed: dict[str, Any] | None) -> float | None:
    """The milliseconds of a typical request while typing, by the module's rule; None when
    the speed was not measured (or lacks what the rule needs)."""
    if not speed:
        return None
    keystroke = speed_number(speed, "keystroke_p95_ms")
    if keystroke is not None:
        return keystroke
    prompt = prompt_tokens_per_s(speed)
    decode = speed_number(speed, "decode_tokens_per_s")
    if prompt is None or decode is None:
        return None
    return (_KEYSTROKE_PROMPT_TOKENS / prompt + _ONE_LINE_TOKENS / decode) * 1000


def budget_ms(timeout_ms: float) -> float:
    """What a model request may take under ``completion.timeoutMs``."""
    return timeout_ms * _BUDGET_SHARE


def parameters(folder: Path, model: InstalledModel) -> float:
    """How many weights the installed model in ``folder`` has: counted from its config.json
    (``parameter_count``), else estimated from its size on disk and precision."""
    try:
        counted = parameter_count(read_json(folder / "config.json", required=False))
    except BackendError:
        counted = None
    if counted is not None:
        return float(counted)
    return model.size_bytes / _BYTES_PER_PARAMETER.get(model.precision, 4.0)


def choose(settings: BackendSettings, timeout_ms: float, root: Path | None = None) -> Chosen:
    """The backend ``settings`` name; for ``auto``, the one this machine runs best."""
    if settings.kind != "auto":
        return Chosen(settings, settings.kind)
    root = root or models_dir()
    budget = budget_ms(timeout_ms)
    fits: list[tuple[float, float, InstalledModel]] = []
    unmeasured: list[str] = []
    elsewhere: list[str] = []
    slow: list[str] = []
    for folder, model in installed_models(root):
        speed = speed_here(model)
        took = request_ms(speed)
        if model.speed and speed is None:
            elsewhere.append(model.name)
        elif took is None:
            unmeasured.append(model.name)
        elif took > budget:
            slow.append(f"{model.name} ~{took:.0f} ms")
        else:
            fits.append((parameters(folder, model), -took, model))
    if fits:
        _, minus_ms, best = max(fits, key=lambda fit: (fit[0], fit[1]))
        chosen = dataclasses.replace(
            settings,
            kind="hybrid",
            hybrid=dataclasses.replace(settings.hybrid, model="onnx"),
            onnx=dataclasses.replace(settings.onnx, model=best.name),
        )
        return Chosen(
            chosen,
            f"auto: hybrid, lookup + onnx model {best.name!r} (a request while typing "
            f"~{-minus_ms:.0f} ms, budget {budget:.0f} ms)",
        )
    why = []
    if slow:
        why.append(f"too slow for completion.timeoutMs {timeout_ms:.0f}: {', '.join(slow)}")
    if unmeasured:
        names = ", ".join(unmeasured)
        why.append(f"speed not measured: {names} (run `ghostcomplete model measure NAME`)")
    if elsewhere:
        names = ", ".join(elsewhere)
        why.append(
            f"speed measured on another machine: {names} (run `ghostcomplete model measure NAME`)"
        )
    if not why:
        why.append(f"no installed model in {root}")
    lookup = dataclasses.replace(settings, kind="lookup")
    return Chosen(lookup, f"auto: lookup ({'; '.join(why)})")
