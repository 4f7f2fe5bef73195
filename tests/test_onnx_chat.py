"""Local instruct models for edit requests: the chat template rendered as transformers renders
it, and OnnxBackend.chat giving transformers' greedy answer, whole or not at all.

The model is tests/fixtures/onnx/tiny-qwen2-instruct (built by
tests/fixtures/make_onnx_fixtures.py): a Qwen2 decoder exported by optimum with a ChatML
template, trained to answer every edit request with one fixed rewrite."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.chat import load_chat_template
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.edit.request import instruct_backend

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
INSTRUCT = FIXTURES / "tiny-qwen2-instruct"
EXPECTED = json.loads((INSTRUCT / "expected.json").read_text())["chat"]
ANSWER = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"


def backend(folder: Path = INSTRUCT) -> OnnxBackend:
    return OnnxBackend(OnnxSettings(path=str(folder), threads=1, warmup=False))


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def test_template_renders_what_transformers_renders() -> None:
    template = load_chat_template(INSTRUCT)
    assert template is not None
    tokenizer = backend().tokenizer
    for case in EXPECTED:
        text = template.render(case["messages"])
        assert text == case["text"]
        assert tokenizer.encode(text) == case["ids"]  # <|im_start|> etc. as special tokens


def test_chat_answers_transformers_greedy_tokens() -> None:
    model = backend()
    for case in EXPECTED:
        want = model.tokenizer.encode(ANSWER)
        answer = asyncio.run(model.chat(case["messages"], max_tokens=64))
        if case["new"][:-1] == want:  # the trained answer, then <|im_end|>
            assert answer == ANSWER
        expected = b"".join(model.tokenizer.token_bytes(t) for t in case["new"])
        assert answer.encode() == expected


def test_completion_models_cannot_edit_and_instruct_models_can() -> None:
    for name in ("tiny-llama", "tiny-gpt2"):
        completion = backend(FIXTURES / name)
        assert completion.follows_instructions is False
        found = instruct_backend(completion, "onnx")
        assert isinstance(found, str) and "no chat template" in found
    assert instruct_backend(backend(), "onnx") is not None
    assert not isinstance(instruct_backend(backend(), "onnx"), str)
    builtin = OnnxBackend(OnnxSettings(warmup=False))
    assert builtin.follows_instructions is False


def test_template_in_a_jinja_file_or_a_named_list(tmp_path: Path) -> None:
    folder = copy_of(INSTRUCT, tmp_path)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    source = config.pop("chat_template")
    config_path.write_text(json.dumps(config))
    assert load_chat_template(folder) is None
    (folder / "chat_template.jinja").write_text(source)
    messages = EXPECTED[0]["messages"]
    from_file = load_chat_template(folder)
    assert from_file is not None and from_file.render(messages) == EXPECTED[0]["text"]
    (folder / "chat_template.jinja").unlink()
    config["chat_template"] = [
        {"name": "tool_use", "template": "{{ raise_exception('tools only') }}"},
        {"name": "default", "template": source},
    ]
    config_path.write_text(json.dumps(config))
    named = load_chat_template(folder)
    assert named is not None and named.render(messages) == EXPECTED[0]["text"]


def test_broken_templates_are_clear_errors(tmp_path: Path) -> None:
    folder = copy_of(INSTRUCT, tmp_path)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    for source, expected in [
        ("{% for m in messages %}", "does not render"),
        ("{{ raise_exception('system messages are not supported') }}", "refused"),
        ("{{ ''.__class__.__mro__ }}", "does not render"),  # the sandbox holds
    ]:
        config["chat_template"] = source
        config_path.write_text(json.dumps(config))
        broken = backend(folder)
        with pytest.raises(BackendError, match=expected):
            asyncio.run(broken.chat([{"role": "user", "content": "x"}]))


def test_an_answer_cut_short_is_an_error_never_a_part() -> None:
    model = backend()
    messages = EXPECTED[0]["messages"]
    with pytest.raises(BackendError, match="cut off at 4 tokens"):
        asyncio.run(model.chat(messages, max_tokens=4))
    with pytest.raises(BackendError, match="did not finish in time"):
        asyncio.run(model.chat(messages, deadline=time.monotonic() - 1))
    huge = [{"role": "user", "content": "x = 1\n" * 5000}]
    with pytest.raises(BackendError, match="model reads at most 4096"):
        asyncio.run(model.chat(huge))


def test_a_cancelled_chat_stops_the_worker() -> None:
    model = backend()

    async def cancel_early() -> None:
        task = asyncio.ensure_future(model.chat(EXPECTED[0]["messages"], max_tokens=4000))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The worker is free again for the next request.
        answer = await asyncio.wait_for(model.chat(EXPECTED[0]["messages"]), 20)
        assert answer == ANSWER

    asyncio.run(cancel_early())


def test_an_unreadable_tokenizer_config_leaves_completions_working(tmp_path: Path) -> None:
    folder = copy_of(INSTRUCT, tmp_path)
    (folder / "tokenizer_config.json").write_text("{not json")
    model = backend(folder)  # loads: completions do not need the file
    assert model.follows_instructions is False
    found = instruct_backend(model, "onnx")
    assert isinstance(found, str) and "no chat template" in found
