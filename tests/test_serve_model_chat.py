"""``POST /v1/chat/completions`` on serve-model: the tiny instruct model's answer in OpenAI's
shape, whole and streamed; backends that cannot follow instructions and bad bodies refused
with a message; hang-ups that stop the answer; a lane that keeps completions moving; and our
http backend's edit requests through it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply, prompt_for
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import ServeModelProcess, open_document, server_executable

from ghostcomplete.backends.base import (
    BackendError,
    Candidate,
    ChatLimits,
    ChatReply,
    CompletionPrompt,
    GenerationLimits,
)
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.backends.hybrid.backend import HybridBackend
from ghostcomplete.backends.hybrid.config import HybridSettings
from ghostcomplete.backends.lookup.backend import LookupBackend
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.worker import ModelWorker
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


class SlowChat:
    """An instruct engine that answers one line every ``pause`` seconds and records whether
    it was stopped before it finished; completions answer at once."""

    name = "slow-chat"
    fim_family = None
    remote = False
    follows_instructions = True

    def __init__(self, lines: int = 100, pause: float = 0.05) -> None:
        self.lines = lines
        self.pause = pause
        self.started = asyncio.Event()
        self.stopped_early = asyncio.Event()
        self.produced = 0

    async def reply(
        self,
        messages: list[dict[str, str]],
        limits: ChatLimits,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        self.started.set()
        text = ""
        try:
            for index in range(self.lines):
                await asyncio.sleep(self.pause)
                self.produced += 1
                piece = f"line {index}\n"
                text += piece
                if on_text is not None:
                    on_text(piece)
        except asyncio.CancelledError:
            self.stopped_early.set()
            raise
        return ChatReply(text, "stop", 3, self.lines)

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        return [Candidate("x = 1")]

    async def aclose(self) -> None:
        pass


MESSAGES = [{"role": "user", "content": "write lines"}]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_client_that_hangs_up_stops_the_answer_and_frees_the_slot(stream: bool):
    engine = SlowChat(lines=200, pause=0.02)
    service, url = await in_process(engine)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = {"messages": MESSAGES, "stream": stream}
            if stream:
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    assert response.status_code == 200
                    await anext(response.aiter_lines())
            else:
                pending = asyncio.ensure_future(client.post("/v1/chat/completions", json=body))
                await asyncio.wait_for(engine.started.wait(), 5)
                pending.cancel()
            await asyncio.wait_for(engine.stopped_early.wait(), 5)
            assert engine.produced < 100
            for _ in range(100):
                if (await client.get("/health")).json()["chat_running"] == 0:
                    break
                await asyncio.sleep(0.02)
            assert (await client.get("/health")).json()["chat_running"] == 0
    finally:
        await service.close()


async def test_a_long_chat_leaves_completions_their_slots():
    engine = SlowChat(lines=100, pause=0.05)  # 5 s
    service, url = await in_process(engine, concurrency=1, queue=0, chat_concurrency=1)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            chat = asyncio.ensure_future(
                client.post("/v1/chat/completions", json={"messages": MESSAGES})
            )
            await asyncio.wait_for(engine.started.wait(), 5)
            started = time.monotonic()
            for _ in range(5):
                answer = await client.post("/v1/completions", json={"prompt": "x", "max_tokens": 4})
                assert answer.status_code == 200 and answer.json()["choices"][0]["text"] == "x = 1"
            assert time.monotonic() - started < 2
            # The chat lane is full and nothing may wait: a second chat is turned away.
            second = await client.post("/v1/chat/completions", json={"messages": MESSAGES})
            assert second.status_code == 503 and second.headers["retry-after"] == "1"
            chat.cancel()
    finally:
        await service.close()


def test_short_jobs_run_between_the_steps_of_a_long_one():
    worker = ModelWorker("test-worker")
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def long_job() -> str:
        inside.set()
        for step in range(50):
            worker.between()
            order.append(f"long {step}")
            if step == 2:
                release.wait(5)  # the short job is submitted while the long one runs
        return "long done"

    try:
        long_future = worker.submit_long(long_job)
        assert inside.wait(5)

        def short_job() -> str:
            order.append("short")
            return "short done"

        short_future = worker.submit(short_job)
        release.set()
        assert short_future.result(5) == "short done"
        assert long_future.result(5) == "long done"
    finally:
        worker.shutdown()
    # It ran at the long job's next step, not after its 50 steps.
    assert order.index("short") == 3


async def test_the_onnx_engine_answers_a_completion_in_the_middle_of_a_chat():
    backend = instruct()
    order: list[str] = []
    entered, go = threading.Event(), threading.Event()
    between, generate = backend._worker.between, backend._generate

    def step() -> None:  # before each of the chat's forward passes, on the model's thread
        order.append("step")
        if not entered.is_set():
            entered.set()
            go.wait(5)  # the completion arrives while the chat is under way
        between()

    def completion(*args: Any) -> list[Candidate]:
        order.append("completion")
        return generate(*args)

    backend._worker.between = step
    backend._generate = completion
    try:
        chat = asyncio.ensure_future(backend.reply(CASES[0]["messages"], ChatLimits(64)))
        assert await asyncio.to_thread(entered.wait, 5)
        asked = asyncio.ensure_future(
            backend.generate(prompt_for("qwen"), GenerationLimits(max_chars=40))
        )
        await asyncio.sleep(0.05)  # submitted (it waits for the chat's next step)
        go.set()
        await asked
        answer = await chat
    finally:
        await backend.aclose()
    assert answer.text == TRAINED
    # It ran at the chat's next step, and the chat's steps went on after it.
    at = order.index("completion")
    assert order[:at] == ["step"] and order.count("step") > at + 10


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
                await backend.chat(MESSAGES, time.monotonic() + 5)
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
