"""Through the real server: after a line is accepted, the next line is not offered the same
line again (postprocess.filters.drop_copy_of_line_above, for every backend)."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import REPO, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

SAMPLE = REPO / "examples" / "sample_project"
METHOD = "\n    def replace_supplier(self, supplier: Supplier) -> None:\n        "
TYPED = "self.sup"
ACCEPTED_LINE = "        self.suppliers[supplier.name] = supplier"


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[server_executable(), "serve"]),
    params=["neovim", "visual-studio-code"],
)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param), root_uri=SAMPLE.as_uri()
        )
    )
    yield
    await lsp_client.shutdown_session()


def end_of(text: str) -> types.Position:
    return types.Position(text.count("\n"), len(text) - text.rfind("\n") - 1)


def type_at_end(client: LanguageClient, uri: str, text: str, version: int, typed: str) -> str:
    """Insert ``typed`` at the end of ``text`` as an editor's incremental change does."""
    end = end_of(text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(end, end), text=typed)
            ],
        )
    )
    return text + typed


async def ask(client: LanguageClient, uri: str, text: str) -> list[types.InlineCompletionItem]:
    """The suggestions for the cursor at the end of ``text``."""
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
            text_document=types.TextDocumentIdentifier(uri),
            position=end_of(text),
        )
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    assert all(isinstance(item.insert_text, str) for item in items)
    return list(items)


async def test_the_accepted_line_is_not_suggested_again_on_the_next_line(
    client: LanguageClient,
):
    for name in ("models.py", "inventory.py"):
        path = SAMPLE / name
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(path.as_uri(), "python", 1, path.read_text())
            )
        )
    uri = (SAMPLE / "inventory.py").as_uri()
    text = type_at_end(client, uri, (SAMPLE / "inventory.py").read_text(), 2, METHOD + TYPED)
    # The first line of the new method: the lookup copies it from add_supplier.
    items = await ask(client, uri, text)
    assert items, "expected a suggestion for self.sup..."
    item = items[0]
    assert isinstance(item.insert_text, str)
    assert text.rsplit("\n", 1)[1] + item.insert_text == ACCEPTED_LINE
    # The user takes it (Tab), the client runs the accept command, then starts the next line.
    text = type_at_end(client, uri, text, 3, item.insert_text)
    assert item.command is not None
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(item.command.command, item.command.arguments)
    )
    assert await ask(client, uri, text) == [], "nothing new to offer at the end of the line"
    text = type_at_end(client, uri, text, 4, "\n        ")
    for version, key in enumerate(TYPED, start=5):
        text = type_at_end(client, uri, text, version, key)
        line_prefix = text.rsplit("\n", 1)[1]
        for suggestion in await ask(client, uri, text):
            assert line_prefix + str(suggestion.insert_text) != ACCEPTED_LINE, (
                f"{line_prefix!r} repeats the line"
            )
