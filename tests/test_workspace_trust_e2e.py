"""The real server and two recording model servers on loopback: the user's (set in
initializationOptions) and one a repository's settings name. Workspace configuration that
does not say the workspace is trusted cannot move requests, or an environment variable's
value as a key, to another address; once the client says it is trusted, it can."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import server_executable
from test_http_e2e import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

USER_PORT = free_port()
REPO_PORT = free_port()
SECRET_VARIABLE = "GHOSTCOMPLETE_TEST_TRUST_SECRET"
SECRET = "ghp_trustmarker0123456789abcdefABCDEF0123"
TEXT = "def add(a, b):\n    return "


def http(port: int) -> dict[str, Any]:
    return {"url": f"http://127.0.0.1:{port}/v1", "model": "fake-coder", "stream": False}


USER = {"backend": {"kind": "http", "http": http(USER_PORT)}, "telemetry": {"mode": "off"}}
# What a repository's .vscode/settings.json adds on top.
REPO = {
    "backend": {
        "kind": "http",
        "http": {**http(REPO_PORT), "apiKeyEnv": SECRET_VARIABLE, "headers": {"X-Org": "repo"}},
    },
    "context": {"exclude": []},
    "telemetry": {"mode": "off"},
}


async def answer(request: Recorded, reply: Reply) -> None:
    await reply.json({"choices": [{"index": 0, "text": "a + b"}]})


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[server_executable(), "serve"],
        server_env={**os.environ, SECRET_VARIABLE: SECRET},
    )
)
async def client(lsp_client: LanguageClient):
    # workspace/configuration answers with the merged tree, as VS Code's own answer does.
    lsp_client.set_configuration({"ghostcomplete": {**USER, **REPO}})
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options=USER,
        )
    )
    yield
    await lsp_client.shutdown_session()


async def settled(client: LanguageClient) -> None:
    """After the server has pulled workspace/configuration (after initialized) and applied
    the answer."""
    await asyncio.sleep(0.5)


async def ask(client: LanguageClient, uri: str) -> list[str]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(1, len("    return ")),
        )
    )
    return [item.insert_text for item in result.items] if result else []


def open_doc(client: LanguageClient, tmp_path: Any, name: str = "add") -> str:
    uri = (tmp_path / f"{name}.py").as_uri()
    text = TEXT.replace("add", name)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
    )
    return uri


def everything_sent(server: FakeModelServer) -> str:
    return "\n".join(
        "\n".join(f"{k}: {v}" for k, v in r.headers.items()) + "\n" + r.raw_body.decode()
        for r in server.requests
    )


async def test_untrusted_workspace_settings_cannot_redirect_requests_or_keys(
    client: LanguageClient, tmp_path
):
    user = await FakeModelServer(answer).start(USER_PORT)
    repo = await FakeModelServer(answer).start(REPO_PORT)
    try:
        await settled(client)
        uri = open_doc(client, tmp_path)
        assert await ask(client, uri) == ["a + b"]
        # A push that does not say the workspace is trusted changes nothing either.
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"ghostcomplete": {**USER, **REPO}})
        )
        await asyncio.sleep(0.2)
        assert await ask(client, open_doc(client, tmp_path, "sub")) == ["a + b"]
    finally:
        await user.close()
        await repo.close()
    assert repo.requests == []
    assert len(user.requests) == 2
    assert SECRET not in everything_sent(user)
    assert "x-org" not in user.requests[0].headers
    warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert any(
        "ignored workspace settings backend.http.url, backend.http.apiKeyEnv, "
        "backend.http.headers, context.exclude" in message
        for message in warnings
    ), warnings


async def test_a_workspace_the_client_says_is_trusted_may_set_them(
    client: LanguageClient, tmp_path
):
    user = await FakeModelServer(answer).start(USER_PORT)
    repo = await FakeModelServer(answer).start(REPO_PORT)
    try:
        await settled(client)
        trusted = {**USER, **REPO, "workspaceTrusted": True}
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"ghostcomplete": trusted})
        )
        await asyncio.sleep(0.2)
        uri = open_doc(client, tmp_path)
        assert await ask(client, uri) == ["a + b"]
    finally:
        await user.close()
        await repo.close()
    assert user.requests == []
    assert repo.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert repo.requests[0].headers["x-org"] == "repo"
    errors = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert not any("workspaceTrusted" in message for message in errors), errors
