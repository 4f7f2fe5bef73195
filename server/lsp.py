"""The language server: thin handlers that snapshot documents and call the pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
from typing import Any

from lsprotocol import types

from ghostcomplete.completion.pipeline import CompletionRequest, CompletionResult
from ghostcomplete.context.exclusion import path_of_uri
from ghostcomplete.context.positions import utf16_length
from ghostcomplete.server import protocol
from ghostcomplete.server.edit import run_edit
from ghostcomplete.server.state import VERSION, GhostServer, plain
from ghostcomplete.server.text_sync import use_lsp_line_rules

__all__ = ["VERSION", "GhostServer", "server"]

log = logging.getLogger("ghostcomplete")

# Line breaks as LSP counts them (not str.splitlines, which also splits at \f, \x85, ...).
_LSP_LINE_BREAK = re.compile("\r\n|\r|\n")


server = GhostServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: GhostServer, params: types.InitializeParams) -> None:
    use_lsp_line_rules(ls.workspace)  # before any document opens
    ls.init_options = params.initialization_options
    roots = [folder.uri for folder in params.workspace_folders or []]
    if not roots and params.root_uri:
        roots = [params.root_uri]
    paths = [path_of_uri(root) for root in roots]
    ls.pipeline.configure(ls.pipeline.settings, [path for path in paths if path is not None])
    ls.apply_client_settings(ls.init_options)


@server.feature(types.INITIALIZED)
async def on_initialized(ls: GhostServer, params: types.InitializedParams) -> None:
    kind, message = ls.status
    ls.set_status(kind, message)  # clients show a status from the start, not after a change
    await refresh_workspace_settings(ls)


async def refresh_workspace_settings(ls: GhostServer) -> None:
    capabilities = ls.client_capabilities
    if not (capabilities.workspace and capabilities.workspace.configuration):
        return
    ls.config_generation += 1
    generation = ls.config_generation
    try:
        answer = await asyncio.wait_for(
            ls.workspace_configuration_async(
                types.ConfigurationParams(
                    items=[types.ConfigurationItem(section=protocol.CONFIGURATION_SECTION)]
                )
            ),
            timeout=5,
        )
    except Exception as error:  # a client that cannot answer keeps initializationOptions
        log.info("workspace/configuration not answered: %s", error)
        return
    if generation != ls.config_generation:
        return  # a newer configuration arrived while we waited
    workspace = plain(answer[0]) if answer else None
    ls.apply_client_settings(ls.init_options, workspace)


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def on_did_change_configuration(
    ls: GhostServer, params: types.DidChangeConfigurationParams
) -> None:
    pushed = plain(params.settings)
    if isinstance(pushed, dict) and protocol.CONFIGURATION_SECTION in pushed:
        ls.config_generation += 1
        ls.apply_client_settings(ls.init_options, pushed[protocol.CONFIGURATION_SECTION])
    else:
        await refresh_workspace_settings(ls)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def on_did_open(ls: GhostServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.recent.touch(params.text_document.uri, params.text_document.language_id)
    document = ls.snapshot(params.text_document.uri)
    if document is not None:
        ls.pipeline.index_for_context(document)  # now, not on the first keystroke


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def on_did_change(ls: GhostServer, params: types.DidChangeTextDocumentParams) -> None:
    document = ls.text_document(params.text_document.uri)
    if document is not None:
        ls.recent.touch(document.uri, document.language_id or "plaintext")
        ls.telemetry.document_changed(document.uri, lambda: document.source)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def on_did_close(ls: GhostServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.recent.forget(uri)
    ls.session.forget(uri)
    ls.telemetry.document_closed(uri)


@server.feature(protocol.DID_FOCUS)
def on_did_focus(ls: GhostServer, params: Any) -> None:
    uri = (plain(params) or {}).get("textDocument", {}).get("uri")
    document = ls.text_document(uri) if isinstance(uri, str) else None
    if document is not None:
        ls.recent.touch(document.uri, document.language_id or "plaintext")


@server.feature(protocol.DID_SHOW_COMPLETION)
def on_did_show_completion(ls: GhostServer, params: Any) -> None:
    completion_id = _completion_id_of((plain(params) or {}).get("item"))
    if completion_id:
        ls.telemetry.shown(completion_id)
        offer = ls.session.offers.get(completion_id)
        document = ls.snapshot(offer.uri) if offer is not None else None
        if document is not None:
            ls.session.prefetch_after_show(completion_id, document, ls.neighbours(document))


@server.feature(protocol.DID_PARTIALLY_ACCEPT_COMPLETION)
def on_did_partially_accept(ls: GhostServer, params: Any) -> None:
    params = plain(params) or {}
    completion_id = _completion_id_of(params.get("item"))
    length = params.get("acceptedLength")
    if completion_id and isinstance(length, int) and length > 0:
        ls.telemetry.partially_accepted(completion_id, length)


def _completion_id_of(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    arguments = (item.get("command") or {}).get("arguments") or []
    return arguments[0] if arguments and isinstance(arguments[0], str) else None


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def on_inline_completion(
    ls: GhostServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    document = ls.snapshot(params.text_document.uri)
    if document is None:
        log.info("inlineCompletion for a document that is not open: %s", params.text_document.uri)
        return types.InlineCompletionList(items=[])
    if not ls.backend_ready():
        return types.InlineCompletionList(items=[])
    position = params.position
    request = CompletionRequest(
        document,
        position.line,
        position.character,
        ls.neighbours(document),
        encoding=ls.position_encoding(),
    )
    ls.telemetry.request_started(document.uri)
    automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
    result = await ls.while_busy(ls.session.complete(request, automatic=automatic))
    if result.dropped:
        return types.InlineCompletionList(items=[])
    ls.show_file_activity(result.skipped)
    _log_result(result)
    ls.telemetry.completed(result)
    if ls.settings.debug.report_timings:
        ls.protocol.notify(protocol.DID_COMPLETE, _timings_report(ls, result))
    return types.InlineCompletionList(items=_items(result, position))


def _items(result: CompletionResult, position: types.Position) -> list[types.InlineCompletionItem]:
    """One item per text, inserted at the cursor; accepting runs ghostcomplete.accept."""
    return [
        types.InlineCompletionItem(
            insert_text=text,
            range=types.Range(position, position),
            command=types.Command(
                title="Accept ghostcomplete suggestion",
                command=protocol.COMMAND_ACCEPT,
                arguments=[item_id],
            ),
        )
        for item_id, text in zip(result.item_ids, result.texts, strict=True)
    ]


def _log_result(result: CompletionResult) -> None:
    log.info(
        "[%s] %s items=%d %s",
        result.completion_id,
        result.skipped or "ok",
        len(result.texts),
        " ".join(f"{stage}={ms}ms" for stage, ms in result.timings_ms.items()),
    )


def _timings_report(ls: GhostServer, result: CompletionResult) -> dict[str, Any]:
    """ghostcomplete/didComplete: what a benchmark needs to know about one answer."""
    request = result.request
    return {
        "id": result.completion_id,
        "uri": request.document.uri if request is not None else None,
        "skipped": result.skipped,
        "items": result.texts,
        # Who wrote each item ("lookup:prefix", "onnx", ...): a hybrid's answers split by it.
        "origins": result.origins,
        "timingsMs": result.timings_ms,
        "cache": result.cache,
        "backendCalled": result.backend_called,
        "backendCalls": ls.session.counters.backend_calls,
        "prefetches": ls.session.counters.prefetches,
        "prompt": result.prompt,
        "backendDetails": result.backend_details,
        # A hybrid's running counts of who answered (lookup_first, model, fallback,
        # lookup_likelier); null for other backends.
        "hybridCounts": _hybrid_counts(ls),
        # A model's answer before its cut, token by token (``bench acceptance`` fits the
        # model's confidence cut on it).
        "trace": dataclasses.asdict(result.trace) if result.trace is not None else None,
        # Answered with the hybrid's early answer; a didFindBetter may follow.
        "early": result.early,
    }


def _hybrid_counts(ls: GhostServer) -> dict[str, int] | None:
    counts = getattr(ls.pipeline.backend, "counters", None)
    return dict(counts) if isinstance(counts, dict) else None


@server.command(protocol.COMMAND_ACCEPT)
def on_accept(ls: GhostServer, *arguments: Any) -> bool:
    completion_id = arguments[0] if arguments and isinstance(arguments[0], str) else None
    if completion_id is None:
        return False
    accepted = ls.telemetry.accepted(completion_id)
    offered = ls.session.offers.get(completion_id)
    if accepted and offered is not None:
        log.info("[%s] accepted (%d UTF-16 units)", completion_id, utf16_length(offered.text))
    document = ls.snapshot(offered.uri) if offered is not None else None
    if document is not None:
        ls.session.prefetch_after_accept(completion_id, document, ls.neighbours(document))
    return accepted


@server.command(protocol.COMMAND_STATS)
async def on_stats(ls: GhostServer, *arguments: Any) -> dict[str, Any]:
    return await asyncio.to_thread(ls.telemetry.summary)


@server.command(protocol.COMMAND_EDIT)
async def on_edit(ls: GhostServer, *arguments: Any) -> dict[str, Any]:
    """Rewrite a range as instructed; one workspace/applyEdit or none (server/edit.py)."""
    return await run_edit(ls, arguments)


@server.feature(types.SHUTDOWN)
def on_shutdown(ls: GhostServer, *arguments: Any) -> None:
    ls.telemetry.close(timeout=2.0)  # commit what is queued


@server.command(protocol.COMMAND_STATUS)
def on_status(ls: GhostServer, *arguments: Any) -> dict[str, Any]:
    kind, message = ls.status
    status: dict[str, Any] = {
        "kind": kind.value,
        "message": message,
        "backend": ls.settings.backend.kind,
        # What it resolved to, in words: auto's choice, a hybrid's model.
        "chosen": ls.backends.chosen,
        # The deadline in force (completion.timeoutMs, or by the backend where it is 0).
        "timeoutMs": ls.settings.deadline_ms,
        # The prompt budget in force (budget.maxTokens, or by the model where it is 0).
        "promptTokens": ls.pipeline.prompt_tokens,
        "version": VERSION,
    }
    dense = ls.pipeline.dense
    if dense is not None:
        # Chunks waiting for the embedding model, and chunk vectors in the index.
        status["dense"] = {"pending": dense.pending, "vectors": dense.vectors}
    return status


@server.command(protocol.COMMAND_DEBUG_DOCUMENT)
def on_debug_document(ls: GhostServer, *arguments: Any) -> Any:
    """Our copy of open documents, for a client to check that its buffer and ours agree."""
    if arguments and isinstance(arguments[0], str):
        return _describe_document(ls.open_text(arguments[0]), ls, arguments[0])
    return {
        document.uri: _describe_document(document.source, ls, document.uri)
        for document in ls.workspace.text_documents.values()
    }


def _describe_document(text: str | None, ls: GhostServer, uri: str) -> dict[str, Any] | None:
    if text is None:
        return None
    document = ls.text_document(uri)
    return {
        "uri": uri,
        "version": document.version if document is not None else None,
        "length": utf16_length(text),
        "lines": len(_LSP_LINE_BREAK.findall(text)) + 1,
        # A client may have sent lone surrogates (valid JSON escapes): hash them as they are.
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    }
