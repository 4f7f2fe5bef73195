"""``POST /v1/chat/completions`` on serve-model: the tiny instruct model's answer in OpenAI's
shape, whole and streamed; token limits, stop strings and the deadline; backends that cannot
follow instructions and bad bodies refused with a message; and our http backend's edit
requests through it, from an editor (test_serve_model_chat_lanes.py: hang-ups and scheduling)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import ServeModelProcess, open_document, server_executable

from ghostcomplete.backends.base import (
    BackendError,
)
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.backends.hybrid.backend import HybridBackend
from ghostcomplete.backends.hybrid.config import HybridSettings
from ghostcomplete.backends.lookup.backend import LookupBackend
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.service import ModelService

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
INSTRUCT = FIXTURES / "tiny-qwen2-instruct"
# Conversations with the answers transformers' greedy decoding gives (ids, then <|im_end|>).
CASES = json.loads((INSTRUCT / "expected.json").read_text())["chat"]
TRAINED = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
ONNX_ARGS = (
    "--backend",
    "onnx",
    "--settings",
    json.dumps({"backend": {"onnx": {"path": str(INSTRUCT), "threads": 1}}}),
)


def instruct() -> OnnxBackend:
    return OnnxBackend(OnnxSettings(path=str(INSTRUCT), threads=1, warmup=False))


def expected_text(backend: OnnxBackend, case: dict[str, Any]) -> str:
    """What transformers' greedy answer says, without the end-of-turn token."""
    return b"".join(backend.tokenizer.token_bytes(t) for t in case["new"][:-1]).decode()


def events(lines: list[str]) -> list[Any]:
    found = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
    assert found[-1] == "[DONE]"
    return [json.loads(data) for data in found[:-1]]


@pytest.mark.e2e
async def test_a_chat_answers_in_openais_shape_whole_and_streamed():
    reference = instruct()
    async with ServeModelProcess(*ONNX_ARGS) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            models = (await client.get("/v1/models")).json()
            assert "chat" in models["data"][0]["capabilities"]
            assert (await client.get("/health")).json()["chat"] is True
            for case in CASES:
                body = {"model": "tiny", "messages": case["messages"], "max_tokens": 64}
                answer = await client.post("/v1/chat/completions", json=body)
                assert answer.status_code == 200, answer.text
                value = answer.json()
                assert value["object"] == "chat.completion" and value["model"] == "tiny"
                assert value["id"].startswith("chatcmpl-") and isinstance(value["created"], int)
                [choice] = value["choices"]
                assert choice["message"] == {
                    "role": "assistant",
                    "content": expected_text(reference, case),
                }
                assert choice["finish_reason"] == "stop"
                usage = value["usage"]
                assert usage["prompt_tokens"] == len(case["ids"])
                assert usage["completion_tokens"] == len(case["new"]) - 1
                assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
            assert CASES[0]["new"][:-1] == reference.tokenizer.encode(TRAINED)

            # Text parts (what OpenAI clients send), the alias, streamed with usage at the end.
            system, user = CASES[0]["messages"]
            parts = [
                {"role": "system", "content": [{"type": "text", "text": system["content"]}]},
                {"role": "user", "content": [{"type": "text", "text": user["content"]}]},
            ]
            body = {
                "messages": parts,
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_completion_tokens": 64,
            }
            async with client.stream("POST", "/chat/completions", json=body) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = [line async for line in response.aiter_lines()]
        code, _ = await server.stop()
    assert code == 0
    chunks = events(lines)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(texts) == TRAINED
    assert len([t for t in texts if t]) > 1  # pieces, not one lump at the end
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == len(CASES[0]["new"]) - 1


async def in_process(backend: Any, **options: Any) -> tuple[ModelService, str]:
    service = ModelService(backend, ServeOptions(port=0, **options))
    return service, await service.start()


async def test_token_limit_stop_strings_and_the_deadline():
    service, url = await in_process(instruct())
    late, late_url = await in_process(instruct(), chat_timeout_ms=1)
    messages = CASES[0]["messages"]
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            short = (
                await client.post(
                    "/v1/chat/completions", json={"messages": messages, "max_tokens": 4}
                )
            ).json()
            assert short["choices"][0]["finish_reason"] == "length"
            assert short["usage"]["completion_tokens"] == 4
            assert TRAINED.startswith(short["choices"][0]["message"]["content"])
            body = {"messages": messages, "stop": [": int"], "temperature": 0.7}
            stopped = (await client.post("/v1/chat/completions", json=body)).json()
            assert stopped["choices"][0]["message"]["content"] == "```python\ndef add(a"
            assert stopped["choices"][0]["finish_reason"] == "stop"
            # A completion still works beside it.
            completion = await client.post(
                "/v1/completions", json={"prompt": "def ", "max_tokens": 4}
            )
            assert completion.status_code == 200
        async with httpx.AsyncClient(base_url=late_url, timeout=30) as client:
            for stream in (False, True):
                body = {"messages": messages, "stream": stream}
                answer = await client.post("/v1/chat/completions", json=body)
                assert answer.status_code == 504
                assert answer.json()["error"]["code"] == "timeout"
                assert "--chat-timeout-ms" in answer.json()["error"]["message"]
            assert (await client.get("/health")).json()["chat_running"] == 0
    finally:
        await service.close()
        await late.close()


@pytest.mark.e2e
async def test_backends_that_cannot_follow_instructions_say_so():
    lookup = ServeModelProcess("--backend", "lookup")
    async with lookup as server, httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        assert "chat" not in (await client.get("/v1/models")).json()["data"][0]["capabilities"]
        body = {"messages": [{"role": "user", "content": "add type hints"}]}
        answer = await client.post("/v1/chat/completions", json=body)
        # ...and our http backend, which edit requests use, shows the server's reason.
        backend = HttpBackend(HttpSettings(url=server.url + "/v1"))
        try:
            with pytest.raises(BackendError) as raised:
                await backend.chat(body["messages"], time.monotonic() + 10)
        finally:
            await backend.aclose()
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "model_not_chat"
    assert "lookup backend has no model that follows instructions" in error["message"]
    assert "HTTP 400" in str(raised.value) and "cannot answer chat completions" in str(raised.value)

    completion_only = OnnxBackend(OnnxSettings(path=str(FIXTURES / "tiny-llama"), warmup=False))
    service, url = await in_process(completion_only)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            refused = await client.post("/v1/chat/completions", json=body)
    finally:
        await service.close()
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "model_not_chat"


BAD_BODIES: list[tuple[object, str]] = [
    ({}, "messages must be a non-empty list"),
    ({"messages": []}, "messages must be a non-empty list"),
    ({"messages": "hello"}, "messages must be a non-empty list"),
    ({"messages": ["hello"]}, "messages[0] must be an object"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role must be a string"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content must be a string"),
    ({"messages": [{"role": "user"}]}, "messages[0].content must be a string"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "only text parts",
    ),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}, "max_tokens must be"),
    ({"messages": [{"role": "user", "content": "hi"}], "stop": 5}, "stop must be"),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, "n must be 1"),
    ({"messages": [{"role": "user", "content": "hi"}], "stream_options": 1}, "stream_options"),
    ({"messages": [{"role": "user", "content": "hi"}] * 1001}, "more than 1000 messages"),
    ([1, 2], "must be a JSON object"),
]


async def huge_request(url: str) -> bytes:
    """The status line for a chat whose body says it is 9 MB (answered before it is sent)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 9000000\r\n\r\n" + b'{"messages": [{"role": "user", "content": "'
    )
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


async def test_bad_bodies_are_400s_and_the_server_goes_on():
    service, url = await in_process(instruct())
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for body, said in BAD_BODIES:
                answer = await client.post("/v1/chat/completions", json=body)
                assert answer.status_code == 400, (body, answer.text)
                assert said in answer.json()["error"]["message"], (body, answer.text)
            garbled = await client.post("/v1/chat/completions", content=b'{"messages": [')
            assert garbled.status_code == 400 and "not JSON" in garbled.text
            assert (await huge_request(url)).startswith(b"HTTP/1.1 413 ")
            assert (await client.get("/v1/chat/completions")).status_code == 405
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            # A conversation longer than the model reads is the client's problem too.
            long = {"messages": [{"role": "user", "content": "word " * 40_000}]}
            answer = await client.post("/v1/chat/completions", json=long)
            assert answer.status_code == 400 and "reads at most" in answer.text
            fine = {"messages": CASES[0]["messages"], "max_tokens": 64}
            answer = await client.post("/v1/chat/completions", json=fine)
            assert answer.json()["choices"][0]["message"]["content"] == TRAINED
    finally:
        await service.close()


async def test_our_http_backend_edits_through_serve_model_and_names_a_missing_chat_endpoint():
    service, url = await in_process(instruct())
    backend = HttpBackend(HttpSettings(url=url + "/v1", model="tiny"))
    try:
        answer = await backend.chat(CASES[0]["messages"], time.monotonic() + 30, max_tokens=64)
        assert answer == TRAINED
        with pytest.raises(BackendError, match="cut off at 3 tokens"):
            await backend.chat(CASES[0]["messages"], time.monotonic() + 30, max_tokens=3)
    finally:
        await backend.aclose()
        await service.close()

    async def completions_only(request: Recorded, reply: Reply) -> None:
        if request.path.endswith("/chat/completions"):
            await reply.json({"error": {"message": "not found"}}, status=404)
            return
        await reply.json({"choices": [{"index": 0, "text": "x"}]})

    async with FakeModelServer(completions_only) as old:
        backend = HttpBackend(HttpSettings(url=old.base + "/v1"))
        try:
            with pytest.raises(BackendError) as raised:
                await backend.chat([{"role": "user", "content": "hi"}], time.monotonic() + 5)
        finally:
            await backend.aclose()
    message = str(raised.value)
    assert f"{old.base}/v1/chat/completions has no such endpoint" in message
    assert "/v1/completions " not in message and "chat completions" in message


# --- an editor's edit request: ghostcomplete serve (http backend) -> serve-model (onnx) --------

ADD = "import math\n\n\ndef add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def editor(lsp_client: LanguageClient):
    applied: list[types.ApplyWorkspaceEditParams] = []
    lsp_client.applied = applied  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        applied.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    model_server = ServeModelProcess(*ONNX_ARGS)
    await model_server.__aenter__()
    http = {"url": model_server.url + "/v1", "model": "tiny-qwen2-instruct"}
    try:
        await lsp_client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("neovim"),
                initialization_options={"backend": {"kind": "http", "http": http}},
            )
        )
        yield
        await lsp_client.shutdown_session()
    finally:
        await model_server.__aexit__()


@pytest.mark.e2e
async def test_an_editors_edit_request_through_serve_model(editor: LanguageClient, tmp_path):
    uri = open_document(editor, tmp_path / "add.py", ADD)
    whole = {"start": {"line": 3, "character": 0}, "end": {"line": 5, "character": 0}}
    arguments = [{"uri": uri, "range": whole, "instruction": "add type hints"}]
    result = await editor.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.edit", arguments)
    )
    assert result is not None and result["applied"] is True, result
    [params] = editor.applied  # type: ignore[attr-defined]
    changes = params.edit.document_changes or []
    edits = [
        e for change in changes if isinstance(change, types.TextDocumentEdit) for e in change.edits
    ]
    edits += [e for found in (params.edit.changes or {}).values() for e in found]
    [change] = edits
    assert isinstance(change, types.TextEdit)
    assert change.new_text == ": int, b: int) -> int"  # the smallest edit
    assert change.range.start == types.Position(3, 9)


async def test_a_hybrid_backend_chats_with_its_instruct_model_and_not_without_one():
    with_model = HybridBackend(LookupBackend(), instruct(), HybridSettings(model="onnx"))
    without = HybridBackend(LookupBackend(), None, HybridSettings(model="onnx"), "no model here")
    service, url = await in_process(with_model)
    bare, bare_url = await in_process(without)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"messages": CASES[0]["messages"], "max_tokens": 64}
            answer = await client.post(url + "/v1/chat/completions", json=body)
            refused = await client.post(bare_url + "/v1/chat/completions", json=body)
    finally:
        await service.close()
        await bare.close()
        await with_model.aclose()
    assert answer.json()["choices"][0]["message"]["content"] == TRAINED
    assert refused.status_code == 400 and "no model here" in refused.json()["error"]["message"]
