"""Telemetry through the real server (pytest-lsp): accept -> still-in-code checks with
simulated time (GHOSTCOMPLETE_TELEMETRY_TIME_SCALE=0.01: the 10-minute check after 6 s),
telemetry off, and a damaged database that must not stop completions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import REPO, open_document, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(40)]

SAMPLE = REPO / "examples" / "sample_project"
TAIL = "\n    def replace_supplier(self, supplier: Supplier) -> None:\n        self.sup"
# The place copied from matched the whole method header, so its " = supplier" is trusted
# though "] = " also goes on with "product" in the sample.
EXPECTED = "pliers[supplier.name] = supplier"


@pytest.fixture(autouse=True)
def simulated_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHOSTCOMPLETE_TELEMETRY_TIME_SCALE", "0.01")


def _options(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    which = getattr(request, "param", "on")
    if which == "off":
        return {"telemetry": {"mode": "off", "path": str(tmp_path / "off.sqlite3")}}
    if which == "damaged":
        damaged = tmp_path / "damaged.sqlite3"
        damaged.write_bytes(b"not a database" * 500)
        return {"telemetry": {"path": str(damaged)}}
    return {"telemetry": {"path": str(tmp_path / "t.sqlite3")}}


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest, tmp_path: Path):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            root_uri=SAMPLE.as_uri(),
            initialization_options=_options(request, tmp_path),
        )
    )
    yield
    await lsp_client.shutdown_session()


def _edit(client: LanguageClient, uri: str, version: int, start, end, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(*start), types.Position(*end)), text=text
                )
            ],
        )
    )


async def _suggest(client: LanguageClient) -> tuple[str, int, int, types.InlineCompletionItem]:
    open_document(client, SAMPLE / "models.py", (SAMPLE / "models.py").read_text())
    text = (SAMPLE / "inventory.py").read_text() + TAIL
    line, character = text.count("\n"), len(text) - text.rfind("\n") - 1
    uri = open_document(client, SAMPLE / "inventory.py", text)
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
        )
    )
    assert result is not None and result.items
    item = result.items[0]
    assert item.insert_text == EXPECTED
    return uri, line, character, item


async def _stats(client: LanguageClient) -> dict[str, Any]:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.stats", [])
    )


async def _wait_for_checks(client: LanguageClient, checks: int) -> dict[str, Any]:
    for _ in range(200):
        stats = await _stats(client)
        if stats["retentionChecks"] >= checks:
            return stats
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {stats['retentionChecks']} still-in-code checks ran")


async def test_accept_then_still_in_code(client: LanguageClient, tmp_path: Path):
    uri, line, character, item = await _suggest(client)
    # The editor inserts the text, then runs the item's command (no didShow: Neovim 0.12).
    _edit(client, uri, 2, (line, character), (line, character), item.insert_text)
    assert item.command is not None
    accepted = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(item.command.command, item.command.arguments)
    )
    assert accepted is True
    # Later edits: a line above, a tweak inside the accepted text.
    _edit(client, uri, 3, (0, 0), (0, 0), "# edited later\n")
    tweak = character + len("pliers[supplier.")
    _edit(client, uri, 4, (line + 1, tweak), (line + 1, tweak + 4), "key")
    stats = await _wait_for_checks(client, 3)  # 15 s, 30 s, 2 min (simulated)
    assert stats["retained"] == stats["retentionChecks"]
    # Then the user rewrites the line: the 5- and 10-minute checks find it gone.
    whole_line = len("        self.sup" + EXPECTED) - 1
    _edit(client, uri, 5, (line + 1, 0), (line + 1, whole_line), "        pass")
    stats = await _wait_for_checks(client, 5)
    assert stats["accepted"] == 1 and stats["shown"] == 1  # shown was inferred
    assert stats["recorded"]["accepted"] == 1
    await _stats(client)  # the command commits what is queued before it reads

    with sqlite3.connect(tmp_path / "t.sqlite3") as db:
        checks = db.execute("SELECT after_s, retained FROM retention ORDER BY after_s").fetchall()
        events = db.execute("SELECT kind, value FROM events ORDER BY id").fetchall()
        stored_text = db.execute("SELECT COUNT(*) FROM items WHERE text IS NOT NULL").fetchone()
    assert [after for after, _ in checks] == [15, 30, 120, 300, 600]
    assert [retained for _, retained in checks][:3] == [1, 1, 1]
    assert [retained for _, retained in checks][3:] == [0, 0]
    assert ("shown", 1) in events and ("accepted", len(EXPECTED)) in events
    assert stored_text == (0,)


@pytest.mark.parametrize("client", ["off"], indirect=True)
async def test_telemetry_off_writes_nothing(client: LanguageClient, tmp_path: Path):
    *_, item = await _suggest(client)
    assert item.command is not None
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(item.command.command, item.command.arguments)
    )
    stats = await _stats(client)
    assert stats["telemetry"] == "off" and "recorded" not in stats
    assert not (tmp_path / "off.sqlite3").exists()


@pytest.mark.parametrize("client", ["damaged"], indirect=True)
async def test_damaged_database_warns_once_and_completions_go_on(client: LanguageClient):
    for _ in range(3):
        await _suggest(client)
        await asyncio.sleep(0.3)  # past the writer's batching interval
    for _ in range(100):
        telemetry_messages = [m for m in client.messages if "telemetry" in m.message]
        if telemetry_messages:
            break
        await asyncio.sleep(0.05)
    assert len(telemetry_messages) == 1
    assert "damaged" in telemetry_messages[0].message
    stats = await _stats(client)
    assert stats["problem"] and stats["offered"] == 3


async def test_a_lone_surrogate_language_costs_one_event(client: LanguageClient, tmp_path: Path):
    # JSON may carry "\ud800" (a lone surrogate); SQLite cannot store it as UTF-8 text.
    odd = SAMPLE / "odd.txt"
    text = "def total(items):\n    return sum(items)\n\ndef tot"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(odd.as_uri(), "py\ud800", 1, text))
    )
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
            text_document=types.TextDocumentIdentifier(odd.as_uri()),
            position=types.Position(3, 7),
        )
    )
    await asyncio.sleep(0.3)  # past the writer's batching interval: its own batch
    for _ in range(2):
        await _suggest(client)
    session = await _stats(client)  # the command commits what is queued before it reads
    assert session["dropped"] == 1 and session["droppedByReason"] == {"unstorable": 1}
    assert session["recorded"]["requests"] == 2

    database = tmp_path / "t.sqlite3"
    cli = await asyncio.create_subprocess_exec(
        server_executable(),
        "stats",
        "--json",
        "--db",
        str(database),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(cli.communicate(), 30)
    assert cli.returncode == 0
    report = json.loads(out)
    assert report["dropped"] == 1 and report["droppedByReason"] == {"unstorable": 1}
    assert report["total"]["requests"] == 2 and report["total"]["offered"] == 2


async def test_stats_separate_backend_answers_from_typing_through(
    client: LanguageClient, tmp_path: Path
):
    uri, line, character, _ = await _suggest(client)
    # The user types the suggestion's first letters: the rest comes from the cache.
    for typed in range(1, 4):
        _edit(client, uri, 1 + typed, (line, character + typed - 1), (line, character + typed - 1),
              EXPECTED[typed - 1])  # fmt: skip
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Automatic),
                text_document=types.TextDocumentIdentifier(uri),
                position=types.Position(line, character + typed),
            )
        )
        assert result is not None and result.items[0].insert_text == EXPECTED[typed:]
    await _stats(client)  # commits what is queued
    cli = await asyncio.create_subprocess_exec(
        server_executable(), "stats", "--json", "--db", str(tmp_path / "t.sqlite3"),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(cli.communicate(), 30)
    by_source = json.loads(out)["latencyMsBySource"]
    assert by_source["backend"]["count"] == 1 and by_source["cache"]["count"] == 3
    assert by_source["backend"]["p50"] >= by_source["cache"]["p50"]
