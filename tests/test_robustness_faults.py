"""Faults through the real server: a model server that refuses, hangs, fails, talks garbage
or hangs up mid-stream; a model file that is missing; a telemetry database that cannot be
written; settings changed to nonsense. Each time: one message however often it fails, a
status, the rest keeps working, and the server recovers by itself when the fault goes."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import completion_texts, eventually, open_document, server_executable

pytestmark = [pytest.mark.e2e]

TEXT = "def add(a, b):\n    return \n\nprint(add(1, 2))\n"
LINE, CHARACTER = 1, len("    return ")
TINY = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = _free_port()


async def good(request: Recorded, reply: Reply) -> None:
    chunks = [json.dumps({"choices": [{"index": 0, "text": piece}]}) for piece in ("a", " + b")]
    await reply.stream([*chunks, "[DONE]"])


async def hangs(request: Recorded, reply: Reply) -> None:
    await reply.hang(10)


async def fails(request: Recorded, reply: Reply) -> None:
    await reply.json({"error": {"message": "model crashed"}}, status=500)


async def garbage(request: Recorded, reply: Reply) -> None:
    await reply.raw(b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")


async def hangs_up_mid_stream(request: Recorded, reply: Reply) -> None:
    chunk = json.dumps({"choices": [{"index": 0, "text": "a"}]})
    await reply.stream([chunk, chunk], complete=False)


FAULTS: dict[str, Callable[[Recorded, Reply], Awaitable[None]] | None] = {
    "refused": None,  # nothing listens on the port
    "timeout": hangs,
    "500": fails,
    "garbage": garbage,
    "mid-stream": hangs_up_mid_stream,
}


def record_statuses(client: LanguageClient) -> list[dict[str, Any]]:
    statuses: list[dict[str, Any]] = []

    @client.feature("ghostcomplete/didChangeStatus")
    def on_status(params: Any) -> None:
        statuses.append(params if isinstance(params, dict) else dict(params._asdict()))

    return statuses


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def http(lsp_client: LanguageClient):
    lsp_client.statuses = record_statuses(lsp_client)  # type: ignore[attr-defined]
    backend = {
        "kind": "http",
        "http": {"url": f"http://127.0.0.1:{PORT}/v1", "model": "m", "fimFamily": "qwen"},
    }
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"backend": backend, "completion": {"timeoutMs": 400}},
        )
    )
    yield
    await lsp_client.shutdown_session()


def _at(line: int, character: int) -> types.Range:
    return types.Range(types.Position(line, character), types.Position(line, character))


async def until_answered(client: LanguageClient, uri: str, timeout: float = 15.0) -> list[str]:
    """Ask until a suggestion comes (a backend may back off for a while after failures)."""
    texts: list[str] = []

    async def poll() -> None:
        nonlocal texts
        while not (texts := await completion_texts(client, uri, LINE, CHARACTER)):
            await asyncio.sleep(0.2)

    await asyncio.wait_for(poll(), timeout)
    return texts


def popups(client: LanguageClient, kind: types.MessageType) -> list[str]:
    return [m.message for m in client.messages if m.type == kind]


async def command(client: LanguageClient, name: str, *arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(name, list(arguments))
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "fault",
    [name for name in FAULTS],
)
async def test_model_server_fault_one_message_status_serving_recovery(
    http: LanguageClient, fault: str
) -> None:
    statuses = http.statuses  # type: ignore[attr-defined]
    uri = open_document(http, "file:///faults/add.py", TEXT)
    handler = FAULTS[fault]
    broken = await FakeModelServer(handler).start(PORT) if handler is not None else None
    try:
        for _ in range(4):
            assert await completion_texts(http, uri, LINE, CHARACTER) == []
        await eventually(lambda: any(s["kind"] == "Error" for s in statuses))
        # The rest keeps working: document sync, commands.
        copy = await command(http, "ghostcomplete.debugDocument", uri)
        assert copy is not None and copy["version"] == 1
        status = await command(http, "ghostcomplete.status")
        assert status["kind"] == "Error" and status["message"]
    finally:
        if broken is not None:
            await broken.close()
    errors = popups(http, types.MessageType.Error)
    assert len(errors) == 1, errors  # four failures, one message
    # One change to Error: the busy flag may repeat the status while a slow request runs.
    kinds = [s["kind"] for s in statuses]
    assert (
        sum(1 for i, kind in enumerate(kinds) if kind == "Error" and kinds[i - 1 : i] != ["Error"])
        == 1
    )

    # The fault goes: suggestions come back and the status is Normal again, by itself.
    healthy = await FakeModelServer(good).start(PORT)
    try:
        assert await until_answered(http, uri) == ["a + b"]
    finally:
        await healthy.close()
    await eventually(lambda: statuses[-1]["kind"] == "Normal")

    # It comes back: the status says so again, but no second popup within the hour. (A new
    # line first: the same prompt again would be answered from the cache, rightly.)
    http.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(2, uri),
            [types.TextDocumentContentChangePartial(range=_at(0, 0), text="import os\n")],
        )
    )
    again = await FakeModelServer(handler).start(PORT) if handler is not None else None
    try:
        for _ in range(3):
            assert await completion_texts(http, uri, LINE + 1, CHARACTER) == []
        await eventually(lambda: statuses[-1]["kind"] == "Error")
    finally:
        if again is not None:
            await again.close()
    assert len(popups(http, types.MessageType.Error)) == 1


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def missing_model(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("model-to-come") / "tiny"
    lsp_client.model_folder = folder  # type: ignore[attr-defined]
    lsp_client.statuses = record_statuses(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={"backend": {"kind": "onnx", "onnx": {"path": str(folder)}}},
        )
    )
    yield
    await lsp_client.shutdown_session()


@pytest.mark.timeout(90)
async def test_a_missing_model_file_then_the_file_appears(missing_model: LanguageClient) -> None:
    client = missing_model
    statuses = client.statuses  # type: ignore[attr-defined]
    folder: Path = client.model_folder  # type: ignore[attr-defined]
    uri = open_document(
        client, "file:///faults/stats.py", "import math\n\n\ndef area(r):\n    return "
    )
    for _ in range(3):
        assert await completion_texts(client, uri, 4, len("    return ")) == []
    await eventually(lambda: any(s["kind"] == "Error" for s in statuses))
    errors = popups(client, types.MessageType.Error)
    assert len(errors) == 1 and str(folder) in errors[0], errors
    assert (await command(client, "ghostcomplete.debugDocument", uri))["version"] == 1

    shutil.copytree(TINY, folder)

    async def suggestion() -> list[str]:
        while True:
            texts = await completion_texts(client, uri, 4, len("    return "))
            if texts:
                return texts
            await asyncio.sleep(0.5)

    texts = await asyncio.wait_for(suggestion(), 60)
    assert texts and texts[0].strip()
    await eventually(lambda: statuses[-1]["kind"] == "Normal")
    assert len(popups(client, types.MessageType.Error)) == 1


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def lookup(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("telemetry-fault")
    blocker = folder / "not-a-directory"
    blocker.write_text("a file where the database's folder should be\n")
    lsp_client.blocker = blocker  # type: ignore[attr-defined]
    lsp_client.statuses = record_statuses(lsp_client)  # type: ignore[attr-defined]
    telemetry = {"mode": "on", "path": str(blocker / "telemetry.sqlite3")}
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"telemetry": telemetry},
        )
    )
    yield
    await lsp_client.shutdown_session()


LOOKUP_TEXT = (
    "def register(registry, handler):\n    registry.add(handler.with_retry(attempts=3))\n\n"
    "def setup(registry, handler):\n    registry.add(handler.with_"
)
LOOKUP_AT = (4, len("    registry.add(handler.with_"))


@pytest.mark.timeout(60)
async def test_an_unwritable_telemetry_database_warns_once_completions_go_on(
    lookup: LanguageClient,
) -> None:
    uri = open_document(lookup, "file:///faults/registry.py", LOOKUP_TEXT)
    for _ in range(4):
        assert await completion_texts(lookup, uri, *LOOKUP_AT) == ["retry(attempts=3))"]
        await asyncio.sleep(0.3)  # past the writer's batching interval
    await eventually(lambda: any("telemetry" in m.message for m in lookup.messages))
    await asyncio.sleep(0.5)
    warnings = [m.message for m in lookup.messages if "telemetry" in m.message]
    assert len(warnings) == 1, warnings
    stats = await command(lookup, "ghostcomplete.stats")
    assert stats["problem"]


@pytest.mark.timeout(60)
async def test_nonsense_settings_one_message_defaults_then_recovery(
    lookup: LanguageClient,
) -> None:
    statuses = lookup.statuses  # type: ignore[attr-defined]
    uri = open_document(lookup, "file:///faults/registry.py", LOOKUP_TEXT)
    nonsense: list[Any] = [
        {"completion": {"timeoutMs": "fast", "debounce": 7}, "context": {"recentFiles": -4}},
        {"backend": {"kind": "quantum"}, "completion": "yes"},
        {"context": {"exclude": 5, "snippets": ["x"]}, "telemetry": {"mode": None}},
        [1, 2, 3],
        "ghost",
        {"completion": {"maxLines": 10**12}, "unknown": {"x": 1}},
    ]
    for settings in nonsense:
        lookup.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"ghostcomplete": settings})
        )
        # Completions go on, with defaults for what was nonsense.
        assert await completion_texts(lookup, uri, *LOOKUP_AT) == ["retry(attempts=3))"]
    await eventually(lambda: any(s["kind"] == "Warning" for s in statuses))
    settings_popups = [m.message for m in lookup.messages if "invalid settings" in m.message]
    assert len(settings_popups) == 1, settings_popups
    assert (await command(lookup, "ghostcomplete.status"))["kind"] == "Warning"

    lookup.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"ghostcomplete": {"completion": {}}})
    )
    await eventually(lambda: statuses[-1]["kind"] == "Normal")
    assert (await command(lookup, "ghostcomplete.status"))["kind"] == "Normal"
    assert await completion_texts(lookup, uri, *LOOKUP_AT) == ["retry(attempts=3))"]
