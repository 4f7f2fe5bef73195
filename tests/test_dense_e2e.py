"""Dense retrieval through the real server: the tiny BERT fixture as the embedding model."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import REPO, server_can_import, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

SAMPLE = REPO / "examples" / "sample_project"
TINY_BERT = REPO / "tests" / "fixtures" / "onnx" / "tiny-bert"
# The wheel's venv in `make wheel-e2e` has the core dependencies only: without the
# `tokenizers` extra, dense retrieval must say what is missing and step aside.
HAS_TOKENIZERS = server_can_import("tokenizers")


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[server_executable(), "serve"]),
    params=[str(TINY_BERT), str(REPO / "no-such-model")],
)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):
    lsp_client.status_messages: list[Any] = []  # type: ignore[attr-defined]
    lsp_client.model_path = request.param  # type: ignore[attr-defined]

    @lsp_client.feature("ghostcomplete/didChangeStatus")
    def on_status(params: Any) -> None:
        lsp_client.status_messages.append(params)  # type: ignore[attr-defined]

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            root_uri=SAMPLE.as_uri(),
            initialization_options={
                "context": {"dense": {"enabled": True, "path": request.param}},
            },
        )
    )
    yield
    await lsp_client.shutdown_session()


async def status(client: LanguageClient) -> dict[str, Any]:
    answer = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="ghostcomplete.status", arguments=[])
    )
    return answer


async def test_completions_with_dense_retrieval_on(client: LanguageClient) -> None:
    models = (SAMPLE / "models.py").read_text()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem((SAMPLE / "models.py").as_uri(), "python", 1, models)
        )
    )
    text = (SAMPLE / "inventory.py").read_text() + (
        "\n    def replace_supplier(self, supplier: Supplier) -> None:\n        self.sup"
    )
    uri = (SAMPLE / "inventory.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
    )
    model_path: str = client.model_path  # type: ignore[attr-defined]
    broken = "no-such-model" in model_path or not HAS_TOKENIZERS
    found = await status(client)
    for _ in range(200):
        if broken or not found["dense"]["pending"]:
            break
        await asyncio.sleep(0.05)
        found = await status(client)
    if broken:
        # One message, a warning status; completions go on with BM25 only.
        assert "dense" not in found
        assert found["kind"] == "Warning"
        why = (
            "no embedding model" if HAS_TOKENIZERS else "the 'tokenizers' package is not installed"
        )
        assert "dense retrieval is off (BM25 only): " + why in found["message"], found
        messages = client.status_messages  # type: ignore[attr-defined]
        warnings = [m for m in messages if getattr(m, "kind", None) == "Warning"]
        assert warnings and "dense retrieval is off" in warnings[0].message
    else:
        assert found["dense"]["pending"] == 0
        assert found["dense"]["vectors"] > 0  # models.py's chunks
        assert found["kind"] == "Normal"
    line = text.count("\n")
    character = len(text) - text.rfind("\n") - 1
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
        )
    )
    assert result is not None and result.items
    assert result.items[0].insert_text == "pliers[supplier.name] = supplier"
