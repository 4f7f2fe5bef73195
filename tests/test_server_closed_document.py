"""A didChange after the document's didClose (VS Code's Revert and Close sends them in that
order) is ignored, not reported to the user as an internal error."""

from __future__ import annotations

import pytest
from lsprotocol import types

from ghostcomplete.server.state import GhostServer

pytestmark = pytest.mark.timeout(10)

URI = "file:///project/warm_up.py"


def change(version: int) -> types.DidChangeTextDocumentParams:
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text="x = 1\n")],
    )


def test_a_change_to_a_closed_document_is_ignored() -> None:
    server = GhostServer()
    initialize = types.InitializeParams(capabilities=types.ClientCapabilities())
    list(server.protocol.lsp_initialize(initialize))
    item = types.TextDocumentItem(uri=URI, language_id="python", version=1, text="")
    list(server.protocol.lsp_text_document__did_open(types.DidOpenTextDocumentParams(item)))
    list(server.protocol.lsp_text_document__did_change(change(2)))
    assert server.workspace.get_text_document(URI).source == "x = 1\n"
    closed = types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=URI))
    list(server.protocol.lsp_text_document__did_close(closed))
    assert list(server.protocol.lsp_text_document__did_change(change(3))) == []
    assert URI not in server.workspace.text_documents
