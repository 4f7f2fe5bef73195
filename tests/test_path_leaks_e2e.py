"""The real server with a recording model server on loopback: nothing behind a link to an
excluded file, and nothing outside the workspace folder, reaches the model server, whether it
comes in through an import, a recently opened file or the document being edited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import server_executable
from test_http_e2e import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

PORT = free_port()
DOTENV = "SERVICE_HOST = 'dotenv-marker-4f1e'\n"
OUTSIDE = "OUTSIDE_NAME = 'outside-marker-9c2b'\n"
PLAIN = "SERVICE_PORT = 'plain-marker-7d3a'\n"
MODULE = (
    "from ...outside import OUTSIDE_NAME\n"
    "from .settings_link import SERVICE_HOST\n"
    "from .plain_settings import SERVICE_PORT\n"
    "\n\n"
    "def connect():\n"
    "    return open_connection(OUTSIDE_NAME, SERVICE_HOST, SERVICE_PORT, "
)


async def answer(request: Recorded, reply: Reply) -> None:
    await reply.json({"choices": [{"index": 0, "text": "timeout=5)"}]})


def layout(tmp_path: Path) -> Path:
    """tmp/outside.py beside the workspace tmp/ws; ws/pkg/settings_link.py -> ws/.env."""
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / ".env").write_text(DOTENV)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "plain_settings.py").write_text(PLAIN)
    (root / "pkg" / "settings_link.py").symlink_to(root / ".env")
    (tmp_path / "outside.py").write_text(OUTSIDE)
    (root / "pkg" / "mod.py").write_text(MODULE)
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return layout(tmp_path)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def client(lsp_client: LanguageClient, root: Path):
    http = {
        "url": f"http://127.0.0.1:{PORT}/v1",
        "model": "fake-coder",
        "fimFamily": "qwen",
        "stream": False,
    }
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            workspace_folders=[types.WorkspaceFolder(root.as_uri(), "ws")],
            initialization_options={
                "backend": {"kind": "http", "http": http},
                "telemetry": {"mode": "off"},
            },
        )
    )
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, path: Path, text: str) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
    )
    return uri


async def ask(client: LanguageClient, uri: str, text: str) -> list[str]:
    lines = text.split("\n")
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(len(lines) - 1, len(lines[-1])),
        )
    )
    return [item.insert_text for item in result.items] if result else []


def sent(server: FakeModelServer) -> str:
    return "\n".join(request.raw_body.decode() for request in server.requests)


async def test_imports_send_neither_a_linked_dotenv_nor_a_file_outside(
    client: LanguageClient, root: Path
) -> None:
    server = await FakeModelServer(answer).start(PORT)
    try:
        uri = open_doc(client, root / "pkg" / "mod.py", MODULE)
        assert await ask(client, uri, MODULE) == ["timeout=5)"]
    finally:
        await server.close()
    body = sent(server)
    prompt = json.loads(server.requests[0].raw_body)["prompt"]
    assert "plain-marker-7d3a" in prompt  # the import context works: the test can see a leak
    assert "dotenv-marker-4f1e" not in body
    assert "outside-marker-9c2b" not in body
    assert str(root.parent) not in body  # no absolute path of a file outside the workspace


async def test_an_open_link_to_dotenv_is_neither_context_nor_completed_in(
    client: LanguageClient, root: Path
) -> None:
    server = await FakeModelServer(answer).start(PORT)
    try:
        # The editor opened the link: it hands over the text of .env under the link's name.
        link_text = DOTENV + "\nSERVICE_HOST_BACKUP = SERVICE_HOST + "
        link = open_doc(client, root / "pkg" / "settings_link.py", link_text)
        assert await ask(client, link, link_text) == []
        assert server.requests == []
        uri = open_doc(client, root / "pkg" / "mod.py", MODULE)
        assert await ask(client, uri, MODULE) == ["timeout=5)"]
    finally:
        await server.close()
    body = sent(server)
    assert "plain-marker-7d3a" in body
    assert "dotenv-marker-4f1e" not in body


async def test_the_status_says_why_a_linked_file_is_inactive(
    client: LanguageClient, root: Path
) -> None:
    statuses: list[Any] = []

    @client.feature("ghostcomplete/didChangeStatus")
    def on_status(params: Any) -> None:
        statuses.append(params["message"] if isinstance(params, dict) else params.message)

    link_text = DOTENV + "\nX = SERVICE_HOST + "
    link = open_doc(client, root / "pkg" / "settings_link.py", link_text)
    assert await ask(client, link, link_text) == []
    assert any("links to .env" in message for message in statuses), statuses
