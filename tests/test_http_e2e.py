"""The real server with ``backend.kind = "http"``, pointed at a loopback model server: ghost
text comes from the model server; an unreachable one gives one message and an Error status,
and completions come back by themselves when it answers again."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import completion_texts, eventually, open_document, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

TEXT = "def add(a, b):\n    return \n\nprint(add(1, 2))\n"
LINE, CHARACTER = 1, len("    return ")
ANSWER = ["a", " + b", "\n", "\n", "print(", "'unused')\n"]


async def stream_answer(request: Recorded, reply: Reply) -> None:
    chunks = [json.dumps({"choices": [{"index": 0, "text": piece}]}) for piece in ANSWER]
    await reply.stream([*chunks, "[DONE]"], delay_s=0.01)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = free_port()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def client(lsp_client: LanguageClient):
    lsp_client.statuses: list[Any] = []  # type: ignore[attr-defined]

    @lsp_client.feature("ghostcomplete/didChangeStatus")
    def on_status(params: Any) -> None:
        kind = params["kind"] if isinstance(params, dict) else params.kind
        lsp_client.statuses.append(kind)  # type: ignore[attr-defined]

    http = {"url": f"http://127.0.0.1:{PORT}/v1", "model": "fake-coder", "fimFamily": "qwen"}
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"backend": {"kind": "http", "http": http}},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_ghost_text_comes_from_the_model_server(client: LanguageClient, tmp_path):
    server = await FakeModelServer(stream_answer).start(PORT)
    try:
        uri = open_document(client, (tmp_path / "add.py").as_uri(), TEXT)
        assert await completion_texts(client, uri, LINE, CHARACTER) == ["a + b"]
        assert await server.wait_for(lambda: server.requests[0].client_closed_early)
    finally:
        await server.close()
    body = server.requests[0].body
    assert server.requests[0].path == "/v1/completions"
    assert body["model"] == "fake-coder" and body["stream"] is True
    prompt = body["prompt"]
    assert prompt.startswith("<|file_sep|>") and "<|fim_prefix|>" in prompt
    assert prompt.endswith("<|fim_middle|>")
    assert "def add(a, b):\n    return <|fim_suffix|>\n\nprint(add(1, 2))" in prompt


async def test_unreachable_server_one_message_error_status_then_recovery(
    client: LanguageClient, tmp_path
):
    uri = open_document(client, (tmp_path / "add.py").as_uri(), TEXT)
    assert await completion_texts(client, uri, LINE, CHARACTER) == []
    assert await completion_texts(client, uri, LINE, CHARACTER) == []
    statuses = client.statuses  # type: ignore[attr-defined]
    await eventually(lambda: "Error" in statuses)
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1, errors  # throttled: two failures, one message
    assert "cannot reach the model server at http://127.0.0.1:" in errors[0].message
    assert statuses.count("Error") == 1

    server = await FakeModelServer(stream_answer).start(PORT)
    try:
        assert await completion_texts(client, uri, LINE, CHARACTER) == ["a + b"]
    finally:
        await server.close()
    await eventually(lambda: statuses[-1] == "Normal")
    assert len([m for m in client.messages if m.type == types.MessageType.Error]) == 1
