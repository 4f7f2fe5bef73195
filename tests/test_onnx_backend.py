"""The ONNX backend through the Backend protocol: settings, model location, stop rules,
candidates, cancellation and broken model files."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from ghostcomplete.backends import BackendError, BackendSettings, create_backend
from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.engine import KvCache
from ghostcomplete.backends.onnx.prompt import fit_prompt
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import load_tokenizer
from ghostcomplete.backends.onnx.worker import ModelWorker
from ghostcomplete.completion.settings import resolve
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

pytestmark = pytest.mark.timeout(60)

TINY = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama"


def prompt_for(prefix: str, suffix: str = "", family: str = "qwen") -> CompletionPrompt:
    context = PackedContext(prefix=prefix, suffix=suffix, snippets=(), tokens=0)
    text = render_fim(context, family, "python", "demo.py")
    return CompletionPrompt("python", "demo.py", context, text, TEMPLATES[family].stop)


def settings(**changes: object) -> OnnxSettings:
    return OnnxSettings(path=str(TINY), threads=1, **changes)  # type: ignore[arg-type]


# --- stop rules ---------------------------------------------------------------------------
def test_line_scope_stops_at_the_end_of_the_line() -> None:
    rule = StopRule(Scope.LINE, "x = ", 1, 400)
    assert rule.cut("foo(1)") is None
    assert rule.cut("foo(1)\n") == 6
    # The cursor ends a non-empty line: the next line is the completion.
    assert StopRule(Scope.LINE, "def f():", 1, 400).cut("\n    return 1") is None
    assert StopRule(Scope.LINE, "def f():", 1, 400).cut("\n    return 1\n") == 13
    assert StopRule(Scope.LINE, "    ", 1, 400).cut("\nx") == 0


def test_block_scope_stops_where_the_indentation_drops() -> None:
    rule = StopRule(Scope.BLOCK, "    ", 20, 400)
    assert rule.cut("if x:\n        y()\n    z()\n") is None
    assert rule.cut("if x:\n        y()\n    z()\nclass") == len("if x:\n        y()\n    z()")
    assert rule.cut("a\n\n    b") is None  # blank lines don't end a block
    assert StopRule(Scope.BLOCK, "", 2, 400).cut("a\nb\nc") == 3


def test_stop_strings_and_max_chars() -> None:
    rule = StopRule(Scope.BLOCK, "", 99, 10, ("<|endoftext|>", "\nclass "))
    assert rule.cut("ab\nclass C") == 2
    assert rule.cut("x" * 12) == 10


# --- settings and construction ------------------------------------------------------------
def test_settings_parse_from_camel_case_json() -> None:
    parsed, errors = resolve(
        {"backend": {"kind": "onnx", "onnx": {"path": "/m", "maxNewTokens": 8, "topP": 0.5}}}
    )
    assert errors == []
    assert parsed.backend.onnx == OnnxSettings(path="/m", max_new_tokens=8, top_p=0.5)
    _, errors = resolve({"backend": {"onnx": {"provider": "tpu"}}})
    assert errors and "backend.onnx.provider" in errors[0]


def test_missing_model_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"no model file model\.onnx"):
        create_backend(BackendSettings(kind="onnx", onnx=OnnxSettings(path=str(tmp_path))))


async def test_corrupt_model_fails_at_generate_with_a_backend_error(tmp_path: Path) -> None:
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(TINY / name, tmp_path / name)
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07garbage" * 100)
    backend = create_backend(BackendSettings(kind="onnx", onnx=OnnxSettings(path=str(tmp_path))))
    for _ in range(2):
        with pytest.raises(BackendError, match="cannot load"):
            await backend.generate(prompt_for("x = 1\ny = "), GenerationLimits())
    await backend.aclose()


# --- generation ---------------------------------------------------------------------------
async def test_generates_candidates_greedy_first_then_samples() -> None:
    backend = OnnxBackend(settings(max_new_tokens=12))
    assert backend.fim_family == "qwen"
    limits = GenerationLimits(scope=Scope.BLOCK, max_lines=5, max_chars=200, candidates=3)
    found = await backend.generate(prompt_for("def add(a, b):\n    "), limits)
    assert found and found[0].origin == "onnx"
    assert len({c.text for c in found}) == len(found)
    assert found[0].details["tokens"] >= 1
    again = await backend.generate(prompt_for("def add(a, b):\n    "), limits)
    assert again[0].text == found[0].text  # greedy and seeded sampling: reproducible
    assert again[0].details["reused_tokens"] > 0  # the KV cache of the last request
    await backend.aclose()


async def test_a_model_that_loads_at_once_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """The load runs in the worker thread and a tiny model can finish it before the
    constructor returns: what the load sets must not be reset after it."""

    def at_once(self: ModelWorker, work, *args):  # type: ignore[no-untyped-def]
        done: concurrent.futures.Future[object] = concurrent.futures.Future()
        done.set_result(work(*args))
        return done

    monkeypatch.setattr(ModelWorker, "submit_background", at_once)
    backend = OnnxBackend(settings(max_new_tokens=4))
    assert backend._model is not None and backend._eos
    limits = GenerationLimits(scope=Scope.LINE, max_lines=1, max_chars=200, candidates=1)
    await backend.generate(prompt_for("def add(a, b):\n    "), limits)
    await backend.aclose()


async def test_cache_reuse_and_prompt_lookup_change_nothing_but_speed() -> None:
    prefix = "for i in range(3):\n    print(i)\nfor j in range(3):\n    print(j)\nfor k in"
    limits = GenerationLimits(scope=Scope.BLOCK, max_lines=5, max_chars=200)
    texts = []
    for options in ({}, {"reuse_cache": False, "prompt_lookup": False}):
        backend = OnnxBackend(settings(max_new_tokens=24, **options))
        await backend.generate(prompt_for(prefix[:40]), limits)
        texts.append([c.text for c in await backend.generate(prompt_for(prefix), limits)])
        await backend.aclose()
    assert texts[0] == texts[1]


async def test_a_cancelled_request_stops_between_tokens() -> None:
    backend = OnnxBackend(settings(max_new_tokens=4000))
    model = backend.model
    forward = model.forward

    def slow_forward(
        ids: list[int], past: KvCache, last: int | None = None
    ) -> tuple[np.ndarray, KvCache]:
        time.sleep(0.01)  # a big model: 10 ms a token
        return forward(ids, past, last)

    model.forward = slow_forward  # type: ignore[method-assign]
    limits = GenerationLimits(scope=Scope.BLOCK, max_lines=4000, max_chars=100_000)
    task = asyncio.create_task(backend.generate(prompt_for("x"), limits))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    model.forward = forward  # type: ignore[method-assign]
    started = time.monotonic()
    quick = GenerationLimits(candidates=1, deadline=time.monotonic() + 5)
    await backend.generate(prompt_for("y = "), quick)
    assert time.monotonic() - started < 0.5  # the worker stopped at once, not after 2 s
    await backend.aclose()


async def test_deadline_returns_what_it_has() -> None:
    backend = OnnxBackend(settings(max_new_tokens=4000))
    assert backend.model is not None
    limits = GenerationLimits(
        scope=Scope.BLOCK, max_lines=4000, max_chars=100_000, deadline=time.monotonic() + 0.2
    )
    started = time.monotonic()
    await backend.generate(prompt_for("x"), limits)
    assert time.monotonic() - started < 1.5
    await backend.aclose()


# --- fitting the prompt into the model's window -------------------------------------------
def test_long_prompts_keep_the_fim_markers_and_the_text_at_the_cursor() -> None:
    tokenizer = load_tokenizer(TINY)
    prefix = "".join(f"value_{i} = compute({i})\n" for i in range(300)) + "total = value_1 +"
    suffix = "\n".join(f"print(value_{i})" for i in range(300))
    prompt = prompt_for(prefix, suffix)
    ids = fit_prompt(prompt, "qwen", tokenizer, 200)
    assert 140 < len(ids) <= 200
    text = "".join(tokenizer.token_bytes(t).decode() or "|" for t in ids)
    # Qwen's repository format: the file's path after <|file_sep|>, then the FIM markers.
    assert ids[0] == tokenizer.special["<|file_sep|>"]
    assert tokenizer.special["<|fim_prefix|>"] in ids[:12]
    assert ids[-1] == tokenizer.special["<|fim_middle|>"]
    assert "total = value_1 +" in text and "print(value_0)" in text
    assert "value_0 =" not in text  # the far end of the prefix went first
    # While the user types on the last line, the prompt keeps its start (whole lines cut).
    longer = fit_prompt(prompt_for(prefix + " val", suffix), "qwen", tokenizer, 200)
    assert longer[:20] == ids[:20]


def test_short_prompts_are_untouched_and_non_fim_models_continue_the_prefix() -> None:
    tokenizer = load_tokenizer(TINY)
    prompt = prompt_for("x = 1\n", "y = 2\n")
    assert fit_prompt(prompt, "qwen", tokenizer, 200) == tokenizer.encode(prompt.text)
    assert fit_prompt(prompt, None, tokenizer, 200) == tokenizer.encode("x = 1\n")
