"""Every http adapter against a live loopback server speaking its protocol: what we send, what
we read back, streamed and not, and the stream closed as soon as the line or block is done."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from http_fakes import PREFIX, SNIPPET, SUFFIX, FakeModelServer, Recorded, Reply, prompt_for, sse

from ghostcomplete.backends.base import BackendError, GenerationLimits
from ghostcomplete.backends.http.adapters import endpoint_url
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.context.syntax import Scope

pytestmark = pytest.mark.timeout(10)


def line_limits(seconds: float = 5.0) -> GenerationLimits:
    return GenerationLimits(Scope.LINE, 400, 1, 1, time.monotonic() + seconds)


async def complete(server: FakeModelServer, settings: HttpSettings):
    backend = HttpBackend(settings, environ={})
    try:
        return await backend.generate(prompt_for(backend.fim_family), line_limits())
    finally:
        await backend.aclose()


# --- OpenAI-compatible /v1/completions --------------------------------------------------------- --


async def test_openai_sends_prefix_and_suffix_for_the_server_to_format():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.json({"choices": [{"index": 0, "text": "math.pi * r ** 2\n# done"}]})

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(url=server.base + "/v1", model="qwen2.5-coder", stream=False)
        candidates = await complete(server, settings)
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    assert candidates[0].origin == "http:openai"
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/completions")
    body = request.body
    assert body["model"] == "qwen2.5-coder"
    assert body["prompt"].startswith("# Path: /work/area.py\n# Compare this snippet from")
    assert body["prompt"].endswith(PREFIX)
    assert body["suffix"] == SUFFIX
    assert body["stream"] is False and body["max_tokens"] > 0
    assert "stop" not in body


async def test_openai_streams_our_fim_prompt_and_hangs_up_at_the_end_of_the_line():
    events = ["ma", "th.pi", " * r ** 2", "\n", "\nprint(", "'more')", "\n", "[DONE]"]
    chunks = [sse({"choices": [{"index": 0, "text": t}]}) for t in events[:-1]] + ["[DONE]"]

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream(chunks, delay_s=0.05)

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(url=server.base, fim_family="qwen")
        candidates = await complete(server, settings)
        assert await server.wait_for(lambda: server.requests[0].client_closed_early)
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    assert candidates[0].details["stopped_early"] == 1.0
    request = server.requests[0]
    # Qwen2.5-Coder's repository format: other files, then the FIM markers.
    assert request.body["prompt"].startswith("<|file_sep|>")
    assert "<|fim_prefix|>" in request.body["prompt"]
    assert "suffix" not in request.body
    assert request.body["stop"] == ["<|endoftext|>", "<|file_sep|>", "<|fim_pad|>"]
    assert request.events_sent < len(chunks)


# --- llama.cpp /infill ----------------------------------------------------------------------------


async def test_llamacpp_infill_sends_snippets_as_input_extra_and_streams():
    pieces = [{"content": "math.pi", "stop": False}, {"content": " * r * r", "stop": False}]
    pieces.append({"content": "", "stop": True})

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream([sse(p) for p in pieces])

    async with FakeModelServer(answer) as server:
        candidates = await complete(server, HttpSettings(api="llamacpp", url=server.base))
    assert [c.text for c in candidates] == ["math.pi * r * r"]
    request = server.requests[0]
    assert request.path == "/infill"
    assert request.body["input_prefix"] == PREFIX
    assert request.body["input_suffix"] == SUFFIX
    assert request.body["input_extra"] == [{"filename": "/work/geometry.py", "text": SNIPPET.text}]
    assert request.body["stream"] is True and request.body["cache_prompt"] is True
    assert request.finished


async def test_llamacpp_infill_plain_json():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.json({"content": "math.pi * r ** 2", "stop": True, "tokens_predicted": 7})

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(api="llamacpp", url=server.base + "/infill", stream=False)
        candidates = await complete(server, settings)
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    assert server.requests[0].path == "/infill"


# --- Ollama /api/generate -------------------------------------------------------------------------


async def test_ollama_streams_ndjson_with_suffix():
    lines = [{"response": "math.pi", "done": False}, {"response": " * r ** 2", "done": False}]
    lines.append({"response": "", "done": True, "done_reason": "stop"})

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream([json.dumps(line) for line in lines], framing="ndjson")

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(api="ollama", url=server.base, model="qwen2.5-coder:1.5b")
        candidates = await complete(server, settings)
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    body = server.requests[0].body
    assert server.requests[0].path == "/api/generate"
    assert body["model"] == "qwen2.5-coder:1.5b"
    assert body["suffix"] == SUFFIX and "raw" not in body
    assert body["options"]["num_predict"] > 0


async def test_ollama_raw_mode_sends_our_rendered_prompt():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.json({"response": "math.pi * r ** 2", "done": True})

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(
            api="ollama", url=server.base, model="starcoder2", fim_family="starcoder", stream=False
        )
        candidates = await complete(server, settings)
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    body = server.requests[0].body
    assert body["raw"] is True and "suffix" not in body
    assert body["prompt"].startswith("<fim_prefix>") and body["prompt"].endswith("<fim_middle>")
    assert body["options"]["stop"] == ["<|endoftext|>", "<file_sep>"]


# --- Mistral Codestral /v1/fim/completions --------------------------------------------------------


async def test_codestral_fim_streams_chat_shaped_deltas():
    deltas = ["math", ".pi * r ** 2", "\nprint()"]
    chunks = [sse({"choices": [{"index": 0, "delta": {"content": d}}]}) for d in deltas]

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream([*chunks, "[DONE]"], delay_s=0.05)

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(api="codestral", url=server.base + "/v1", api_key="k-123456")
        candidates = await complete(server, settings)
        assert await server.wait_for(lambda: server.requests[0].client_closed_early)
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    request = server.requests[0]
    assert request.path == "/v1/fim/completions"
    assert request.headers["authorization"] == "Bearer k-123456"
    assert request.body["model"] == "codestral-latest"
    assert request.body["suffix"] == SUFFIX


async def test_codestral_plain_json():
    async def answer(request: Recorded, reply: Reply) -> None:
        message = {"role": "assistant", "content": "math.pi * r ** 2"}
        await reply.json({"choices": [{"index": 0, "message": message}]})

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(api="codestral", url=server.base, stream=False)
        candidates = await complete(server, settings)
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]


# --- Hugging Face TGI /generate -------------------------------------------------------------------


async def test_tgi_generate_stream_skips_special_tokens():
    def token(text: str, special: bool = False, final: str | None = None) -> str:
        return sse({"token": {"id": 1, "text": text, "special": special}, "generated_text": final})

    events = [
        token("math.pi"),
        token(" * r ** 2"),
        token("<|endoftext|>", True, "math.pi * r ** 2"),
    ]

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream(events)

    async with FakeModelServer(answer) as server:
        candidates = await complete(server, HttpSettings(api="tgi", url=server.base))
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    request = server.requests[0]
    assert request.path == "/generate_stream"
    assert request.body["inputs"].startswith("<fim_prefix>")  # starcoder unless told otherwise
    assert request.body["parameters"]["max_new_tokens"] > 0
    assert "temperature" not in request.body["parameters"]  # TGI refuses 0: greedy instead


async def test_tgi_generate_plain_json():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.json({"generated_text": "math.pi * r ** 2"})

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(api="tgi", url=server.base + "/generate", stream=False)
        candidates = await complete(server, settings)
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
    assert server.requests[0].path == "/generate"


# --- OpenAI-compatible chat (edit requests) ----------------------------------------------------- -


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_completions_for_edits(stream: bool):
    async def answer(request: Recorded, reply: Reply) -> None:
        message = {"role": "assistant", "content": "def add(a, b):\n    return a + b\n"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        await reply.json({"choices": [choice]})

    async with FakeModelServer(answer) as server:
        settings = HttpSettings(url=server.base + "/v1", model="m", stream=stream, max_tokens=16)
        backend = HttpBackend(settings)
        messages = [{"role": "user", "content": "write add"}]
        try:
            text = await backend.chat(messages, deadline=time.monotonic() + 5, max_tokens=900)
        finally:
            await backend.aclose()
    assert text == "def add(a, b):\n    return a + b\n"
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.body["messages"] == messages and request.body["model"] == "m"
    # A whole answer is asked for (an edit never uses half of one), with the edit's own cap
    # rather than the completion cap of backend.http.maxTokens.
    assert request.body["stream"] is False and request.body["max_tokens"] == 900


async def test_chat_refuses_an_answer_cut_off_by_the_token_limit():
    async def answer(request: Recorded, reply: Reply) -> None:
        message = {"role": "assistant", "content": "def add(a, b):\n    return"}
        await reply.json({"choices": [{"index": 0, "message": message, "finish_reason": "length"}]})

    async with FakeModelServer(answer) as server:
        backend = HttpBackend(HttpSettings(url=server.base + "/v1"))
        try:
            with pytest.raises(BackendError, match="cut off at 64 tokens"):
                await backend.chat([{"role": "user", "content": "x"}], time.monotonic() + 5, 64)
        finally:
            await backend.aclose()


async def test_chat_past_the_deadline_raises_instead_of_answering_in_part():
    async def answer(request: Recorded, reply: Reply) -> None:
        await asyncio.sleep(2)
        await reply.json({"choices": [{"index": 0, "message": {"content": "late"}}]})

    async with FakeModelServer(answer) as server:
        backend = HttpBackend(HttpSettings(url=server.base + "/v1"))
        try:
            with pytest.raises(BackendError, match="did not finish the answer in time"):
                await backend.chat([{"role": "user", "content": "x"}], time.monotonic() + 0.3)
        finally:
            await backend.aclose()


# --- keep-alive, block scope ----------------------------------------------------------------------


async def test_one_connection_serves_many_completions():
    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.json({"choices": [{"index": 0, "text": "math.pi * r ** 2"}]})

    async with FakeModelServer(answer) as server:
        backend = HttpBackend(HttpSettings(url=server.base, stream=False))
        try:
            for _ in range(5):
                assert await backend.generate(prompt_for(None), line_limits())
        finally:
            await backend.aclose()
    assert len(server.requests) == 5
    assert server.connections == 1


async def test_block_scope_stops_when_the_indentation_drops():
    prefix = "def area(r):\n    "
    pieces = [
        "pi = 3.14\n",
        "    return pi",
        " * r * r\n",
        "\n",
        "def other",
        "():\n",
        "    pass\n",
    ]
    chunks = [sse({"choices": [{"index": 0, "text": p}]}) for p in pieces]

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream([*chunks, "[DONE]"], delay_s=0.03)

    async with FakeModelServer(answer) as server:
        backend = HttpBackend(HttpSettings(url=server.base))
        limits = GenerationLimits(Scope.BLOCK, 400, 20, 1, time.monotonic() + 5)
        try:
            candidates = await backend.generate(prompt_for(None, prefix, ""), limits)
        finally:
            await backend.aclose()
        assert await server.wait_for(lambda: server.requests[0].client_closed_early)
    assert [c.text for c in candidates] == ["pi = 3.14\n    return pi * r * r\n"]
    assert server.requests[0].events_sent < len(chunks) + 1


# --- addresses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "endpoint", "known", "expected"),
    [
        ("http://h:8000", "/v1/completions", (), "http://h:8000/v1/completions"),
        ("http://h:8000/v1", "/v1/completions", (), "http://h:8000/v1/completions"),
        ("http://h:8000/v1/", "/v1/completions", (), "http://h:8000/v1/completions"),
        (
            "http://h/v1/completions",
            "/v1/completions",
            ("/v1/completions",),
            "http://h/v1/completions",
        ),
        (
            "https://openrouter.ai/api/v1",
            "/v1/completions",
            (),
            "https://openrouter.ai/api/v1/completions",
        ),
        ("http://h:11434/api", "/api/generate", (), "http://h:11434/api/generate"),
        (
            "http://h:8080/generate",
            "/generate_stream",
            ("/generate", "/generate_stream"),
            "http://h:8080/generate_stream",
        ),
        (
            "http://h/v1",
            "/v1/chat/completions",
            ("/v1/completions",),
            "http://h/v1/chat/completions",
        ),
        (
            "http://h/v1/completions",
            "/v1/chat/completions",
            ("/v1/completions",),
            "http://h/v1/chat/completions",
        ),
    ],
)
def test_endpoint_url(base: str, endpoint: str, known: tuple[str, ...], expected: str):
    assert endpoint_url(base, endpoint, known) == expected


async def test_a_stream_the_server_already_finished_keeps_its_connection():
    pieces = ["math.pi * r ** 2\n", "print('more')\n", "print('and more')\n"]
    chunks = [sse({"choices": [{"index": 0, "text": p}]}) for p in pieces]

    async def answer(request: Recorded, reply: Reply) -> None:
        await reply.stream([*chunks, "[DONE]"])  # all at once: generation is over

    async with FakeModelServer(answer) as server:
        backend = HttpBackend(HttpSettings(url=server.base))
        try:
            for _ in range(3):
                candidates = await backend.generate(prompt_for(None), line_limits())
                assert [c.text for c in candidates] == ["math.pi * r ** 2"]
                assert candidates[0].details["stopped_early"] == 1.0
                await server.wait_for(lambda: server.requests[-1].finished)
                await asyncio.sleep(0.01)  # the rest is read in the background
        finally:
            await backend.aclose()
    assert len(server.requests) == 3
    assert server.connections == 1  # read to the end, not hung up on


async def test_a_server_that_cannot_stream_may_answer_with_one_json_body():
    async def answer(request: Recorded, reply: Reply) -> None:
        assert request.body["stream"] is True
        await reply.json({"choices": [{"index": 0, "text": "math.pi * r ** 2\nmore"}]})

    async with FakeModelServer(answer) as server:
        candidates = await complete(server, HttpSettings(url=server.base))
    assert [c.text for c in candidates] == ["math.pi * r ** 2"]
