"""The http backend against the real llama.cpp server (``llama-server``, built by ``make
peers``) on 127.0.0.1 with the real Qwen2.5-Coder-0.5B GGUF (``make model-qwen``).

``make peers-test`` runs them; they are marked ``peers`` and deselected in ``make test``, and
skip when the binary or the model is missing. What they pin down is what the fakes in
tests/http_fakes.py assume: the wire shapes, that ``input_extra`` reaches the prompt, and that
hanging up on a stream frees the server's slot.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from http_fakes import PREFIX, SNIPPET, SUFFIX, prompt_for

from ghostcomplete.backends.base import BackendError, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.bench.peers_llamacpp import LlamaServer, PeerMissing, peer_binary, peer_gguf
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    try:
        peer_binary("llama-server")
        gguf = peer_gguf()
    except PeerMissing as missing:
        pytest.skip(str(missing))
    with LlamaServer(gguf, context=4096, debug_slots=True) as server:
        yield server


def line_limits(seconds: float = 60.0) -> GenerationLimits:
    return GenerationLimits(Scope.LINE, 400, 1, 1, time.monotonic() + seconds)


def long_block_limits(seconds: float = 60.0) -> GenerationLimits:
    return GenerationLimits(Scope.BLOCK, 6000, 200, 1, time.monotonic() + seconds)


async def generate(
    server: LlamaServer, settings: HttpSettings, limits: GenerationLimits, prompt=None
) -> list[str]:
    backend = HttpBackend(settings, environ={})
    try:
        candidates = await backend.generate(prompt or prompt_for(backend.fim_family), limits)
    finally:
        await backend.aclose()
    return [c.text for c in candidates]


async def wait_idle(server: LlamaServer, timeout_s: float = 15.0) -> float:
    """Seconds until the slot stops processing (fails past ``timeout_s``)."""
    started = time.monotonic()
    while server.slot()["is_processing"]:
        assert time.monotonic() - started < timeout_s, "the slot is still generating"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


# --- llama.cpp /infill ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_infill_puts_input_extra_and_both_sides_into_the_prompt(llama, stream: bool):
    # Whole answers run to max_tokens (nothing stops them at the line's end): keep it short.
    settings = HttpSettings(api="llamacpp", url=llama.base, stream=stream, max_tokens=48)
    texts = await generate(llama, settings, line_limits())
    assert len(texts) == 1 and texts[0].strip() and "\n" not in texts[0]
    slot = llama.slot()
    prompt = slot["prompt"]
    # Qwen2.5-Coder's repository format: the snippet as another file, then prefix and suffix.
    assert SNIPPET.text in prompt and "geometry.py" in prompt
    assert "<|fim_prefix|>" in prompt and "<|fim_suffix|>" in prompt
    assert (
        prompt.index("<|fim_prefix|>")
        < prompt.index("def area(r):")
        < prompt.index("<|fim_suffix|>")
    )
    assert prompt.index("<|fim_suffix|>") < prompt.index("print(area(2))")
    assert prompt.rstrip().endswith("<|fim_middle|>")


async def test_infill_streamed_and_whole_answers_agree(llama):
    settings = HttpSettings(api="llamacpp", url=llama.base, max_tokens=48)
    streamed = await generate(llama, settings, line_limits())
    whole = await generate(llama, replace(settings, stream=False), line_limits())
    assert streamed == whole


# --- OpenAI-compatible /v1/completions --------------------------------------------------------


async def test_openai_with_our_qwen_prompt_streamed_and_whole_agree(llama):
    settings = HttpSettings(url=llama.base + "/v1", fim_family="qwen", max_tokens=48)
    streamed = await generate(llama, settings, line_limits())
    prompt = llama.slot()["prompt"]
    assert prompt.startswith("<|file_sep|>") and prompt.rstrip().endswith("<|fim_middle|>")
    whole = await generate(llama, replace(settings, stream=False), line_limits())
    assert streamed == whole
    assert streamed[0].strip() and "\n" not in streamed[0]


async def test_openai_suffix_is_ignored_by_llama_server(llama):
    """With ``fimFamily`` null the openai adapter sends ``prompt`` + ``suffix``; llama-server's
    /v1/completions drops ``suffix`` (the model sees the prefix only), so the docs tell
    llama.cpp users to set a family or use ``api: llamacpp``."""
    await generate(llama, HttpSettings(url=llama.base + "/v1", max_tokens=16), line_limits())
    prompt = llama.slot()["prompt"]
    assert PREFIX.rstrip() in prompt
    assert "print(area(2))" not in prompt and "<|fim_suffix|>" not in prompt


# --- stopping early -----------------------------------------------------------------------------


def block_prompt() -> CompletionPrompt:
    """A hole that the model fills with many lines: an empty class body to write."""
    prefix = (
        "class Inventory:\n"
        '    """Items in stock, with add, remove, count, total value, cheapest, dearest,\n'
        '    restock, report and CSV import and export methods."""\n\n'
        "    def __init__(self):\n"
    )
    context = PackedContext(prefix, "", (), 80)
    text = render_fim(context, "qwen", "python", "inventory.py")
    return CompletionPrompt("python", "inventory.py", context, text, TEMPLATES["qwen"].stop)


@pytest.mark.parametrize("api", ["llamacpp", "openai"])
async def test_cancelling_mid_stream_frees_the_slot(llama, api: str):
    url = llama.base + ("/v1" if api == "openai" else "")
    settings = HttpSettings(api=api, url=url, fim_family="qwen", max_tokens=1000)
    task = asyncio.ensure_future(generate(llama, settings, long_block_limits(), block_prompt()))
    started = time.monotonic()
    while True:  # until the server is generating
        await asyncio.sleep(0.02)
        slot = llama.slot()
        if slot["is_processing"] and slot.get("next_token", [{}])[0].get("n_decoded", 0) >= 3:
            break
        assert not task.done(), "the answer finished before it could be cancelled"
        assert time.monotonic() - started < 60
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Going on to 1,000 tokens would take the server tens of seconds on this machine.
    assert await wait_idle(llama) < 1.0
    # The server takes the next request at once.
    began = time.monotonic()
    texts = await generate(llama, HttpSettings(api="llamacpp", url=llama.base), line_limits())
    assert texts and time.monotonic() - began < 10


@pytest.mark.parametrize("api", ["llamacpp", "openai"])
async def test_a_line_is_cut_at_its_end_and_the_server_stops(llama, api: str):
    url = llama.base + ("/v1" if api == "openai" else "")
    settings = HttpSettings(api=api, url=url, fim_family="qwen", max_tokens=400)
    backend = HttpBackend(settings, environ={})
    try:
        prompt = block_prompt()
        candidates = await backend.generate(prompt, line_limits())
    finally:
        await backend.aclose()
    assert len(candidates) == 1 and "\n" not in candidates[0].text.strip("\n")
    assert candidates[0].details["stopped_early"] == 1.0
    # The server stopped at our hang-up: the 400 tokens it was asked for would take it seconds.
    # (/slots' "generated" is not updated for a task cut short, so it cannot tell how many.)
    assert await wait_idle(llama) < 1.0


# --- what the fakes assume about the wire -------------------------------------------------------


async def sse_events(url: str, body: dict) -> list[str]:
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("POST", url, json=body) as answer,
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        return [
            line[len("data: ") :]
            async for line in answer.aiter_lines()
            if line.startswith("data: ")
        ]


async def test_the_infill_stream_has_the_shape_the_fake_sends(llama):
    body = {
        "input_prefix": PREFIX,
        "input_suffix": SUFFIX,
        "input_extra": [{"filename": "geometry.py", "text": SNIPPET.text}],
        "n_predict": 8,
        "stream": True,
        "cache_prompt": True,
    }
    events = [json.loads(e) for e in await sse_events(llama.base + "/infill", body)]
    assert all(isinstance(e["content"], str) and isinstance(e["stop"], bool) for e in events)
    assert [e["stop"] for e in events][-1] is True and not any(e["stop"] for e in events[:-1])


async def test_the_completions_stream_has_the_shape_the_fake_sends(llama):
    body = {"prompt": prompt_for("qwen").text, "max_tokens": 8, "stream": True, "temperature": 0}
    events = await sse_events(llama.base + "/v1/completions", body)
    assert events[-1] == "[DONE]"
    for event in map(json.loads, events[:-1]):
        assert isinstance(event["choices"][0]["text"], str)


async def test_a_prompt_past_the_context_is_one_readable_error(llama):
    """The real server refuses with HTTP 400 and a JSON error; the backend says so once, with
    the server's own words."""
    long_prefix = "values = [\n" + "".join(f"    {n},\n" for n in range(3000))
    prompt = prompt_for("qwen", prefix=long_prefix)
    with pytest.raises(BackendError) as raised:
        await generate(
            llama, HttpSettings(url=llama.base, fim_family="qwen"), line_limits(), prompt
        )
    message = str(raised.value)
    assert "HTTP 400" in message and "context" in message


async def test_a_prompt_being_read_is_read_to_the_end_and_warms_the_cache(llama):
    """llama-server does not stop reading a prompt when its request is cancelled (docs/backends.md
    says so); the prompt it read is then in its cache, so asking again is quick."""
    lines = [f"def handler_{n}(request):\n    return respond(request, {n})\n" for n in range(120)]
    prompt = prompt_for("qwen", prefix="".join(lines) + "def handler_120(request):\n    return ")
    settings = HttpSettings(api="llamacpp", url=llama.base, max_tokens=16)
    task = asyncio.ensure_future(generate(llama, settings, line_limits(), prompt))
    started = time.monotonic()
    while not llama.slot()["is_processing"]:
        await asyncio.sleep(0.01)
        assert time.monotonic() - started < 10
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_idle(llama, timeout_s=60) > 0.5
    began = time.monotonic()
    assert await generate(llama, settings, line_limits(), prompt)
    assert time.monotonic() - began < 3.0
