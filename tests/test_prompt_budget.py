"""The prompt budget of a local model (``budget.maxTokens`` 0, the default): what the model
reads in about two seconds at the speed measured on this machine, 512 tokens on a CPU where
none was measured, 2,048 for a model elsewhere or an explicit setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from support import copy_of_builtin_model

from ghostcomplete.backends import Backend, LookupBackend
from ghostcomplete.backends.hybrid.backend import HybridBackend
from ghostcomplete.backends.hybrid.config import HybridSettings
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.installed import (
    InstalledModel,
    machine_fingerprint,
    prompt_tokens_per_s,
    speed_here,
    write_manifest,
)
from ghostcomplete.backends.onnx.prompt_budget import READ_S, prompt_tokens_for
from ghostcomplete.completion.pipeline import CompletionRequest, CompletionResult, Pipeline
from ghostcomplete.completion.settings import resolve
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.ranker.budget import DEFAULT_PROMPT_TOKENS
from ghostcomplete.ranker.tokens import TokenCounter

pytestmark = pytest.mark.timeout(60)

CPU = "CPUExecutionProvider"


def test_the_budget_is_what_the_model_reads_in_two_seconds() -> None:
    assert READ_S == 2.0
    assert prompt_tokens_for(5000.0, on_gpu=False) == 2048
    assert prompt_tokens_for(1024.0, on_gpu=False) == 2048  # exactly two seconds
    assert prompt_tokens_for(1000.0, on_gpu=False) == 1024
    assert prompt_tokens_for(300.0, on_gpu=False) == 512  # the 0.5B on two cores
    assert prompt_tokens_for(70.0, on_gpu=False) == 512  # never less: the smallest step
    # Not measured here: the largest step on a GPU, the smallest on the CPU.
    assert prompt_tokens_for(None, on_gpu=True) == 2048
    assert prompt_tokens_for(None, on_gpu=False) == 512
    assert prompt_tokens_for(0.0, on_gpu=False) == 512


def test_a_speed_measured_on_another_machine_does_not_count() -> None:
    here = {"prompt_tokens_per_s": 300.0, "machine": machine_fingerprint()}
    there = {"prompt_tokens_per_s": 3000.0, "machine": {**machine_fingerprint(), "cores": 999}}
    unsaid = {"prompt_tokens_per_s": 300.0}

    def model(speed: dict[str, Any] | None) -> InstalledModel:
        return InstalledModel("m", "test", "llama", "fp32", speed=speed)

    assert speed_here(model(here)) == here
    assert speed_here(model(there)) is None
    assert speed_here(model(unsaid)) == unsaid  # the record does not say where: kept
    assert speed_here(model(None)) is None


def installed(tmp_path: Path, speed: dict[str, Any] | None) -> Path:
    """The built-in model in a folder of its own, with a manifest recording ``speed``."""
    folder = tmp_path / "model"
    copy_of_builtin_model(folder)
    write_manifest(folder, InstalledModel("model", "test", "llama", "fp32", speed=speed))
    return folder


@pytest.mark.parametrize(
    ("speed", "expected"),
    [
        (None, 512),  # no speed measured: the CPU's step
        ({"prompt_tokens_per_s": 5000.0, "provider": CPU}, 2048),
        ({"prompt_tokens_per_s": 700.0, "provider": CPU}, 1024),
        # The longest prefill measured stands in for a missing prompt_tokens_per_s.
        ({"prefill_64_ms": 10.0, "prefill_448_ms": 100.0, "provider": CPU}, 2048),
        # Measured on a GPU, running on the CPU now: that speed says nothing here.
        ({"prompt_tokens_per_s": 50_000.0, "provider": "CUDAExecutionProvider"}, 512),
        # Measured on another machine.
        (
            {
                "prompt_tokens_per_s": 5000.0,
                "provider": CPU,
                "machine": {**machine_fingerprint(), "cpu": "a much faster one"},
            },
            512,
        ),
    ],
)
async def test_the_onnx_backend_asks_for_the_budget_of_its_measured_speed(
    tmp_path: Path, speed: dict[str, Any] | None, expected: int
) -> None:
    backend = OnnxBackend(OnnxSettings(path=str(installed(tmp_path, speed)), provider="cpu"))
    try:
        backend.model  # noqa: B018 - waits for the load: the device is known after it
        assert backend.prompt_tokens == expected
        hybrid = HybridBackend(LookupBackend(), backend, HybridSettings())
        assert hybrid.prompt_tokens == expected
        assert HybridBackend(LookupBackend(), None, HybridSettings()).prompt_tokens is None
    finally:
        await backend.aclose()


class Budgeted:
    """A backend that only records the prompts it is given, asking for a prompt budget."""

    name = "budgeted"
    fim_family = "qwen"
    remote = False

    def __init__(self, prompt_tokens: int | None) -> None:
        self.prompt_tokens = prompt_tokens


def prompt_tokens_used(backend: object, settings: dict[str, Any]) -> tuple[int, int]:
    """The budget the pipeline applies with ``backend`` and ``settings``, and the tokens of
    the prompt it renders for a cursor in the middle of a long file."""
    resolved, errors = resolve(settings)
    assert errors == []
    pipeline = Pipeline(cast(Backend, backend), resolved)
    lines = [f"value_{i} = compute(value_{i - 1}, {i})  # step {i}" for i in range(1, 400)]
    lines[199] = "value_200 = "  # the cursor at its end, 199 lines above it and 199 below
    text = "\n".join(lines)
    column = len(lines[199])
    offset = text.index("value_200 =") + column
    document = DocumentSnapshot("file:///work/long.py", "python", text, 1)
    request = CompletionRequest(document, 199, column, [])
    result = CompletionResult(request.completion_id, [])
    cursor = pipeline.cut(request, result)
    assert cursor is not None, result.skipped
    assert cursor.offset == offset
    prompt = pipeline.prepare(request, cursor, float("inf"), {}).prompt
    return pipeline.prompt_tokens, TokenCounter().count(prompt.text)


def test_the_pipeline_packs_the_prompt_into_the_budget_in_force() -> None:
    # Asked for by the backend's model where budget.maxTokens is 0 (the default).
    budget, used = prompt_tokens_used(Budgeted(512), {})
    assert budget == 512 and 400 < used <= 512
    # The setting wins where it is given.
    budget, used = prompt_tokens_used(Budgeted(512), {"budget": {"maxTokens": 1500}})
    assert budget == 1500 and 1200 < used <= 1500
    # No model asking (the lookup, a model over http): the default budget.
    budget, used = prompt_tokens_used(Budgeted(None), {})
    assert budget == DEFAULT_PROMPT_TOKENS and 1600 < used <= DEFAULT_PROMPT_TOKENS
    assert prompt_tokens_used(LookupBackend(), {})[0] == DEFAULT_PROMPT_TOKENS


def test_a_measurement_records_the_speed_of_its_longest_prefill() -> None:
    from ghostcomplete.model.measure import speed_record

    measured = {
        "prefill_64_ms": 100.0,
        "prefill_448_ms": 1400.0,
        "decode_tokens_per_s": 40.2,
        "keystroke_p50_ms": 185.0,
        "keystroke_p95_ms": 320.0,
        "keystroke_prompt_budget": 512,
        "provider": "CPUExecutionProvider",
        "threads": 2,
    }
    record = speed_record(measured)
    assert record["prompt_tokens"] == 448 and record["prompt_tokens_per_s"] == 320.0
    # The rule auto and the prompt budget read the record with gives the same speed.
    assert prompt_tokens_per_s(record) == prompt_tokens_per_s(measured) == 320.0
