"""The real server in a subprocess, spoken to as editors speak to it (pytest-lsp)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import REPO, open_document, request_completion, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

SAMPLE = REPO / "examples" / "sample_project"


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[server_executable(), "serve"]),
    params=["neovim", "visual-studio-code"],
)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):
    lsp_client.status_messages: list[Any] = []  # type: ignore[attr-defined]

    @lsp_client.feature("ghostcomplete/didChangeStatus")
    def on_status(params: Any) -> None:
        lsp_client.status_messages.append(params)  # type: ignore[attr-defined]

    lsp_client.initialize_result = await lsp_client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            root_uri=SAMPLE.as_uri(),
            initialization_options={"debug": {"reportTimings": True}},
        )
    )
    yield
    await lsp_client.shutdown_session()


INVENTORY_TAIL = "\n    def replace_supplier(self, supplier: Supplier) -> None:\n        self.sup"
# The place copied from matched the whole method header, so its " = supplier" is trusted
# though "] = " also goes on with "product" in the sample.
EXPECTED = "pliers[supplier.name] = supplier"


def inventory_with(tail: str) -> tuple[str, int, int]:
    """The sample inventory with ``tail`` typed at its end; the cursor after it."""
    full = (SAMPLE / "inventory.py").read_text() + tail
    line = full.count("\n")
    character = len(full) - full.rfind("\n") - 1
    return full, line, character


async def test_advertises_inline_completion_and_incremental_sync(client: LanguageClient):
    capabilities = client.initialize_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.inline_completion_provider is not None
    sync = capabilities.text_document_sync
    assert isinstance(sync, types.TextDocumentSyncOptions)
    assert sync.change == types.TextDocumentSyncKind.Incremental
    assert capabilities.execute_command_provider is not None
    assert "ghostcomplete.accept" in capabilities.execute_command_provider.commands


async def test_continues_a_pattern_found_in_another_open_file(client: LanguageClient, tmp_path):
    other = tmp_path / "registry.py"
    other.write_text(
        "class Registry:\n"
        "    def register_handler(self, name: str, handler: Handler) -> None:\n"
        "        self.handlers_by_name[name] = handler.with_retry(attempts=3)\n"
    )
    open_document(client, other)
    current = tmp_path / "main.py"
    text = "def setup(registry):\n    registry.handlers_by_name[name] = handler.with_"
    uri = open_document(client, current, text)
    result = await request_completion(client, uri, 1, len(text.split("\n")[1]), automatic=True)
    assert [item.insert_text for item in result.items][:1] == ["retry(attempts=3)"]
    item = result.items[0]
    assert item.command is not None and item.command.command == "ghostcomplete.accept"
    end = types.Position(1, len(text.split("\n")[1]))
    assert item.range == types.Range(end, end)


async def test_writes_from_shorter_contexts_where_nothing_long_matches(
    client: LanguageClient, tmp_path
):
    """The n-gram fallback, through the server: the typed "x = fr(" occurs nowhere (the
    lookup needs all 7 characters), but " = fr(" went on alike at both of its places;
    `fallback: "none"` turns it off, and no answer made before the change is shown again."""
    other = tmp_path / "queries.py"
    other.write_text("a = fr(db, 'users', 100)\nb = fr(db, 'users', 100)\n")
    open_document(client, other)
    text = "def report(db):\n    x = fr("
    uri = open_document(client, tmp_path / "report.py", text)
    result = await request_completion(client, uri, 1, len(text.split("\n")[1]), automatic=True)
    assert [item.insert_text for item in result.items][:1] == ["db, 'users', 100)"]
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"ghostcomplete": {"backend": {"lookup": {"fallback": "none"}}}}
        )
    )
    await asyncio.sleep(0.2)
    result = await request_completion(client, uri, 1, len(text.split("\n")[1]), automatic=True)
    assert result is None or not result.items


async def test_accept_command_is_recorded(client: LanguageClient):
    models = open_document(client, SAMPLE / "models.py")
    assert models
    text, line, character = inventory_with(INVENTORY_TAIL)
    uri = open_document(client, SAMPLE / "inventory.py", text)
    result = await request_completion(client, uri, line, character, automatic=True)
    assert result.items, "expected a suggestion for self.sup..."
    assert result.items[0].insert_text == EXPECTED
    item = result.items[0]
    client.protocol.notify(
        "textDocument/didShowCompletion", {"item": client.protocol._converter.unstructure(item)}
    )
    accepted = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(item.command.command, item.command.arguments)
    )
    assert accepted is True
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.stats", [])
    )
    assert stats["accepted"] == 1 and stats["shown"] == 1 and stats["offered"] >= 1


async def test_newer_request_supersedes_older(client: LanguageClient):
    open_document(client, SAMPLE / "models.py")
    text, line, character = inventory_with(INVENTORY_TAIL)
    uri = open_document(client, SAMPLE / "inventory.py", text)
    answers = await asyncio.gather(
        *(request_completion(client, uri, line, character, automatic=True) for _ in range(5))
    )
    # Every request is answered; the superseded ones with nothing, the last with a suggestion.
    assert answers[-1].items
    assert all(isinstance(answer, types.InlineCompletionList) for answer in answers)


async def test_cancel_request_answers_cancelled(client: LanguageClient):
    open_document(client, SAMPLE / "models.py")
    text, line, character = inventory_with(INVENTORY_TAIL)
    uri = open_document(client, SAMPLE / "inventory.py", text)
    params = types.InlineCompletionParams(
        context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
        text_document=types.TextDocumentIdentifier(uri),
        position=types.Position(line, character),
    )
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="to-be-cancelled"
    )
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="to-be-cancelled"))
    try:  # cancelled, or answered before the cancel arrived: both are correct
        await asyncio.wait_for(asyncio.wrap_future(future), 5)
    except Exception as error:
        assert "cancel" in str(error).lower()
    result = await request_completion(
        client, uri, line, character, automatic=True
    )  # the server is still alive
    assert result.items


@pytest.mark.parametrize(
    ("line", "character"),
    [(0, 0), (500, 0), (0, 10_000)],
    ids=["start", "line-out-of-range", "character-out-of-range"],
)
async def test_bad_positions_answer_empty(client: LanguageClient, line: int, character: int):
    text, _, _ = inventory_with(INVENTORY_TAIL)
    uri = open_document(client, SAMPLE / "inventory.py", text)
    result = await request_completion(client, uri, line, character, automatic=True)
    assert not result.items
    assert (
        await request_completion(client, uri, *inventory_with(INVENTORY_TAIL)[1:], automatic=True)
    ).items


async def test_unopened_document_answers_empty(client: LanguageClient):
    result = await request_completion(
        client, (SAMPLE / "inventory.py").as_uri(), 3, 4, automatic=True
    )
    assert not result.items


async def test_position_inside_surrogate_pair_answers_empty(client: LanguageClient, tmp_path):
    text = "values = [1, 2, 3]\nname = 'x😀y'\n"
    uri = open_document(client, tmp_path / "emoji.py", text)
    result = await request_completion(
        client, uri, 1, 10, automatic=True
    )  # between the two UTF-16 halves of 😀
    assert not result.items


async def test_binary_and_huge_documents_answer_empty(client: LanguageClient, tmp_path):
    binary = "\x00\x01ELF" + "abc = 1\n" * 10
    uri = open_document(client, tmp_path / "blob.py", binary)
    assert (await request_completion(client, uri, 1, 3, automatic=True)).items == ()
    huge = "value_of_line = compute(1, 2, 3)\n" * 320_000  # ~10 MB
    uri = open_document(client, tmp_path / "huge.py", huge)
    assert (await request_completion(client, uri, 1000, 10, automatic=True)).items == ()
    # Alive and still useful.
    open_document(client, SAMPLE / "models.py")
    text, line, character = inventory_with(INVENTORY_TAIL)
    uri = open_document(client, SAMPLE / "inventory.py", text)
    assert (await request_completion(client, uri, line, character, automatic=True)).items


async def test_incremental_changes_are_applied(client: LanguageClient, tmp_path):
    open_document(client, SAMPLE / "models.py")
    text, line, _ = inventory_with(
        "\n    def replace_supplier(self, supplier: Supplier) -> None:\n"
    )
    path = SAMPLE / "inventory.py"
    uri = open_document(client, path, text)
    typed = "        self.sup"
    for index, ch in enumerate(typed):
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=2 + index, uri=uri),
                [
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(line, index), types.Position(line, index)),
                        text=ch,
                    )
                ],
            )
        )
    result = await request_completion(client, uri, line, len(typed), automatic=True)
    assert result.items and result.items[0].insert_text == EXPECTED


async def test_bad_settings_give_one_message_and_defaults(client: LanguageClient):
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"ghostcomplete": {"context": {"recentFiles": "many"}, "bogus": 1}}
        )
    )
    await client.wait_for_notification("window/showMessage")
    message = client.messages[-1]
    assert "context.recentFiles" in message.message and "bogus" in message.message
    status = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.status", [])
    )
    assert status["kind"] == "Warning"
    # Still completing with defaults.
    open_document(client, SAMPLE / "models.py")
    text, line, character = inventory_with(INVENTORY_TAIL)
    uri = open_document(client, SAMPLE / "inventory.py", text)
    assert (await request_completion(client, uri, line, character, automatic=True)).items


async def test_copilot_notifications_are_accepted(client: LanguageClient):
    uri = open_document(client, SAMPLE / "models.py")
    client.protocol.notify("textDocument/didFocus", {"textDocument": {"uri": uri}})
    client.protocol.notify(
        "textDocument/didPartiallyAcceptCompletion",
        {"item": {"insertText": "x", "command": {"arguments": ["nope"]}}, "acceptedLength": 1},
    )
    client.protocol.notify("textDocument/didShowCompletion", {"item": "garbage"})
    stats = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.stats", [])
    )
    assert stats["partiallyAccepted"] == 0


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def utf8_client(lsp_client: LanguageClient):
    capabilities = client_capabilities("neovim")
    capabilities.general = types.GeneralClientCapabilities(
        position_encodings=[types.PositionEncodingKind.Utf8]
    )
    result = await lsp_client.initialize_session(
        types.InitializeParams(capabilities=capabilities, root_uri=SAMPLE.as_uri())
    )
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
    yield
    await lsp_client.shutdown_session()


async def test_positions_in_utf8_when_negotiated(utf8_client: LanguageClient, tmp_path):
    text = (
        "greeting = 'héllo wörld'; farewell_message = format_message(greeting)\n"
        "salutation = 'héllo wörld'; farewell_"
    )
    uri = open_document(utf8_client, tmp_path / "accents.py", text)
    last = text.split("\n")[1]
    result = await request_completion(
        utf8_client, uri, 1, len(last.encode("utf-8")), automatic=True
    )
    # The right place: what follows "farewell_" on the first line (or its start: the lookup
    # cuts a copy where it stops being likely).
    first = result.items[0].insert_text
    assert first.startswith("message = ") and "message = format_message(greeting)".startswith(first)
    # A byte offset inside "é" is no position at all: nothing, rather than a wrong place.
    assert not (
        await request_completion(utf8_client, uri, 1, len(b"salutation = 'h") + 1, automatic=True)
    ).items


async def test_initial_status_is_sent(client: LanguageClient):
    for _ in range(100):
        if client.status_messages:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert client.status_messages[0].kind == "Normal"  # type: ignore[attr-defined]


async def test_excluded_files_are_never_read(client: LanguageClient, tmp_path):
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    line = "database_url = 'postgres://admin:pw@db.internal:5432/prod'\n"
    secret = open_document(client, secret_dir / "settings.py", line)
    visible = tmp_path / "visible.py"
    visible_uri = open_document(
        client, visible, "replica_url = 'postgres://reader:pw@replica:5432/prod'\n"
    )
    assert visible_uri
    uri = open_document(client, tmp_path / "main.py", "import os\n\ndatabase_url = 'postgres://")
    result = await request_completion(
        client, uri, 2, len("database_url = 'postgres://"), automatic=True
    )
    assert all("admin" not in item.insert_text for item in result.items)
    assert [item.insert_text for item in result.items][:1] == ["reader:pw@replica:5432/prod'"]
    # Nothing is completed inside the excluded file, and the status says why.
    assert not (await request_completion(client, secret, 0, 20, automatic=True)).items
    for _ in range(100):
        kinds = [m.kind for m in client.status_messages]  # type: ignore[attr-defined]
        if "Inactive" in kinds:
            break
        await asyncio.sleep(0.05)
    assert "Inactive" in kinds


async def status_after(client: LanguageClient, settings: dict[str, Any]) -> dict[str, Any]:
    """The server's status once ``settings`` are the workspace configuration."""
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"ghostcomplete": settings})
    )
    status = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.status", [])
    )
    assert isinstance(status, dict)
    return status


async def test_the_deadline_in_force_follows_where_the_model_runs(client: LanguageClient):
    async def deadline_after(settings: dict[str, Any]) -> int:
        return int((await status_after(client, settings))["timeoutMs"])

    # The default backend (auto: the lookup here, or a model on this machine).
    assert await deadline_after({}) == 600
    # Nothing listens on port 9: the backend is built, and no request is made.
    remote = {"kind": "http", "http": {"url": "http://127.0.0.1:9/v1"}}
    assert await deadline_after({"backend": remote}) == 1000
    hybrid = {"kind": "hybrid", "hybrid": {"model": "http"}, "http": remote["http"]}
    assert await deadline_after({"backend": hybrid}) == 1000
    assert await deadline_after({"backend": remote, "completion": {"timeoutMs": 750}}) == 750
    assert (
        await deadline_after({"backend": {"kind": "onnx"}, "completion": {"timeoutMs": 0}}) == 600
    )


async def test_the_prompt_budget_in_force_is_in_the_status(client: LanguageClient):
    async def budget_after(settings: dict[str, Any]) -> int:
        return int((await status_after(client, settings))["promptTokens"])

    # auto with no installed model: the lookup, with the default budget.
    assert await budget_after({}) == 2048
    assert await budget_after({"budget": {"maxTokens": 777}}) == 777
    # A model over http (nothing listens on port 9; no request is made): the default.
    remote = {"kind": "http", "http": {"url": "http://127.0.0.1:9/v1"}}
    assert await budget_after({"backend": remote, "budget": {"maxTokens": 0}}) == 2048
