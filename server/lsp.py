"""The language server: thin handlers that snapshot documents and call the pipeline."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from ghostcomplete.backends import Backend, BackendError, LookupBackend, create_backend
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.exclusion import path_of_uri
from ghostcomplete.context.positions import utf16_length
from ghostcomplete.context.recent_files import RecentFiles
from ghostcomplete.server import protocol
from ghostcomplete.server.edit import CommandProtocol, run_edit
from ghostcomplete.server.pipeline import CompletionRequest, CompletionResult, Pipeline
from ghostcomplete.server.session import CompletionSession
from ghostcomplete.server.settings import Settings, resolve
from ghostcomplete.server.text_sync import use_lsp_line_rules
from ghostcomplete.server.wire import WireProtocol
from ghostcomplete.telemetry.recorder import TelemetryRecorder
from ghostcomplete.telemetry.store import resolve_path

log = logging.getLogger("ghostcomplete")

try:
    VERSION = version("ghostcomplete")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"

# A lasting problem is told to the user at most this often (seconds).
_MESSAGE_INTERVAL_S = 3600.0
# A backend that could not be built (its model file missing, say) is tried again this often
# (seconds), so that it comes back by itself when the fault goes.
_BACKEND_RETRY_S = 5.0
# Line breaks as LSP counts them (not str.splitlines, which also splits at \f, \x85, ...).
_LSP_LINE_BREAK = re.compile("\r\n|\r|\n")


def plain(value: Any) -> Any:
    """Client-sent params of methods pygls does not know arrive as namedtuples: make dicts."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


class _Protocol(WireProtocol, CommandProtocol):
    """Answers malformed requests (server/wire.py); keeps command params (server/edit.py)."""


class GhostServer(LanguageServer):
    """Server state: settings, the pipeline, recent files, offers, in-flight requests."""

    def __init__(self) -> None:
        super().__init__(
            "ghostcomplete",
            VERSION,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=_Protocol,
        )
        self.settings = Settings()
        self.pipeline = Pipeline(LookupBackend(), self.settings)
        self.session = CompletionSession(self.pipeline, on_backend_error=self.backend_failed)
        # Set when the configured backend could not be built; completions answer nothing.
        self.backend_broken: str | None = None
        self.recent = RecentFiles()
        self.telemetry = TelemetryRecorder(
            read_document=self.open_text,
            on_problem=lambda message: self.tell_once(
                "telemetry", message, types.MessageType.Warning
            ),
        )
        self.in_flight: dict[str, asyncio.Task[CompletionResult]] = {}
        self.init_options: Any = None
        # Bumped by every configuration change, so that a slow pull cannot undo a newer push.
        self.config_generation = 0
        self._last_message: dict[str, float] = {}
        self.status = (protocol.StatusKind.NORMAL, "")
        self._background: set[asyncio.Future[None]] = set()
        self._configured = False
        self._backend_built_at = 0.0

    # --- settings -----------------------------------------------------------------------
    def apply_settings(self, *layers: Any) -> None:
        settings, errors = resolve(*layers)
        first = not self._configured
        self._configured = True
        if first or settings.backend != self.settings.backend:
            self.replace_backend(settings)
        self.settings = settings
        self.pipeline.settings = settings
        self.telemetry.configure(
            settings.telemetry.mode == "on",
            resolve_path(settings.telemetry.path),
            settings.telemetry.capture_content,
        )
        if errors:
            self.tell_once(
                "settings",
                "ghostcomplete: ignored invalid settings (defaults used): " + "; ".join(errors),
                types.MessageType.Warning,
            )
            self.set_status(protocol.StatusKind.WARNING, "invalid settings: " + "; ".join(errors))
        elif self.status[0] is protocol.StatusKind.WARNING:
            self.set_status(protocol.StatusKind.NORMAL, "")

    def replace_backend(self, settings: Settings) -> None:
        old: Backend = self.pipeline.backend
        self._backend_built_at = time.monotonic()
        try:
            self.pipeline.backend = create_backend(settings.backend)
            self.backend_broken = None
        except BackendError as error:
            self.backend_broken = str(error)
            self.tell_once("backend", f"ghostcomplete: {error}", types.MessageType.Error)
            if self.status != (protocol.StatusKind.ERROR, str(error)):
                self.set_status(protocol.StatusKind.ERROR, str(error))
            return
        if old is not self.pipeline.backend:
            closing = asyncio.ensure_future(old.aclose())
            self._background.add(closing)
            closing.add_done_callback(self._background.discard)

    def retry_broken_backend(self) -> bool:
        """Build the backend again if it could not be built and a while has passed since the
        last try; True when it now works."""
        if time.monotonic() - self._backend_built_at < _BACKEND_RETRY_S:
            return False
        self.replace_backend(self.settings)
        return self.backend_broken is None

    def backend_failed(self, error: BackendError) -> None:
        self.tell_once("backend", f"ghostcomplete: {error}", types.MessageType.Error)
        if self.status[0] is not protocol.StatusKind.ERROR:
            self.set_status(protocol.StatusKind.ERROR, str(error))
        else:
            self.status = (protocol.StatusKind.ERROR, str(error))  # the latest word, no new event

    def backend_recovered(self) -> None:
        if self.status[0] is protocol.StatusKind.ERROR and self.backend_broken is None:
            self.set_status(protocol.StatusKind.NORMAL, "")

    def show_file_activity(self, skipped: str | None) -> None:
        """Inactive while the user is in a file we will not complete in; Normal again after."""
        inactive = skipped is not None and skipped.startswith(("excluded", "completions are"))
        if inactive and self.status != (protocol.StatusKind.INACTIVE, skipped):
            self.set_status(protocol.StatusKind.INACTIVE, skipped or "")
        elif not inactive and self.status[0] is protocol.StatusKind.INACTIVE:
            self.set_status(protocol.StatusKind.NORMAL, "")

    # --- messages and status ------------------------------------------------------------
    def tell_once(self, key: str, message: str, kind: types.MessageType) -> None:
        """Show ``message`` unless the same kind of message was shown within the hour."""
        now = time.monotonic()
        previous = self._last_message.get(key)
        log.warning("%s", message)
        if previous is not None and now - previous < _MESSAGE_INTERVAL_S:
            return
        self._last_message[key] = now
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Out-of-band errors (a notification handler failed, a message could not be read;
        pygls logs the traceback): told once an hour, not as a popup per bad message.
        Requests answer with their own error instead."""
        if source is FeatureRequestError:
            return
        message = f"ghostcomplete: internal error ({error}); see the log"
        self.tell_once("internal", message, types.MessageType.Error)

    def set_status(self, kind: protocol.StatusKind, message: str, busy: bool = False) -> None:
        self.status = (kind, message)
        self.protocol.notify(
            protocol.DID_CHANGE_STATUS, {"kind": kind.value, "message": message, "busy": busy}
        )

    def position_encoding(self) -> str:
        """The unit of LSP character offsets negotiated with this client ("utf-16" default)."""
        encoding = self.workspace.position_encoding or "utf-16"
        return str(getattr(encoding, "value", encoding))

    # --- documents ----------------------------------------------------------------------
    def text_document(self, uri: str) -> TextDocument | None:
        """The open document at ``uri``: pygls keys them by the percent-decoded URI, and
        editors send encoded ones (spaces, ``c%3A``)."""
        return self.workspace.text_documents.get(unquote(uri))

    def open_text(self, uri: str) -> str | None:
        document = self.text_document(uri)
        return document.source if document is not None else None

    def snapshot(self, uri: str) -> DocumentSnapshot | None:
        document = self.text_document(uri)
        if document is None:
            return None
        return DocumentSnapshot(
            uri, document.language_id or "plaintext", document.source, document.version or 0
        )

    def neighbours(self, document: DocumentSnapshot) -> list[DocumentSnapshot]:
        uris = self.recent.recent(
            document.language_id,
            exclude=document.uri,
            limit=self.settings.context.recent_files,
        )
        found = [self.snapshot(uri) for uri in uris]
        return [snapshot for snapshot in found if snapshot is not None]


server = GhostServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: GhostServer, params: types.InitializeParams) -> None:
    use_lsp_line_rules(ls.workspace)  # before any document opens
    ls.init_options = params.initialization_options
    roots = [folder.uri for folder in params.workspace_folders or []]
    if not roots and params.root_uri:
        roots = [params.root_uri]
    paths = [path_of_uri(root) for root in roots]
    ls.pipeline.set_roots([path for path in paths if path is not None])
    ls.apply_settings(ls.init_options)


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
    ls.apply_settings(ls.init_options, workspace)


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def on_did_change_configuration(
    ls: GhostServer, params: types.DidChangeConfigurationParams
) -> None:
    pushed = plain(params.settings)
    if isinstance(pushed, dict) and protocol.CONFIGURATION_SECTION in pushed:
        ls.config_generation += 1
        ls.apply_settings(ls.init_options, pushed[protocol.CONFIGURATION_SECTION])
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
    task = ls.in_flight.pop(uri, None)
    if task is not None:
        task.cancel()


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
    uri = params.text_document.uri
    document = ls.snapshot(uri)
    empty = types.InlineCompletionList(items=[])
    if document is None:
        log.info("inlineCompletion for a document that is not open: %s", uri)
        return empty
    if ls.backend_broken is not None and not ls.retry_broken_backend():
        return empty
    encoding = ls.position_encoding()
    request = CompletionRequest(
        document,
        params.position.line,
        params.position.character,
        ls.neighbours(document),
        encoding=encoding,
    )
    previous = ls.in_flight.get(uri)
    if previous is not None:
        previous.cancel()  # superseded: the newer request wins
    ls.telemetry.request_started(uri)
    automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
    task = asyncio.ensure_future(ls.session.complete(request, automatic=automatic))
    ls.in_flight[uri] = task
    try:
        result = await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # $/cancelRequest for this very request: pygls answers RequestCancelled
        log.info("[%s] superseded", request.completion_id)
        return empty
    except BackendError as error:
        log.warning("[%s] backend failed: %s", request.completion_id, error)
        ls.backend_failed(error)
        return empty
    except Exception:
        log.exception("[%s] completion failed", request.completion_id)
        return empty
    finally:
        if ls.in_flight.get(uri) is task:
            del ls.in_flight[uri]
    if ls.session.deadline_misses == 0 and (result.backend_called or result.cache == "inflight"):
        ls.backend_recovered()  # only an answer from the backend proves it works again
    ls.show_file_activity(result.skipped)
    log.info(
        "[%s] %s items=%d %s",
        result.completion_id,
        result.skipped or "ok",
        len(result.texts),
        " ".join(f"{stage}={ms}ms" for stage, ms in result.timings_ms.items()),
    )
    ls.telemetry.completed(
        completion_id=result.completion_id,
        uri=uri,
        language=document.language_id,
        automatic=automatic,
        backend=ls.settings.backend.kind,
        model=getattr(ls.pipeline.backend, "name", None),
        texts=result.texts,
        origins=result.origins,
        timings_ms=result.timings_ms,
        cache=result.cache,
        skipped=result.skipped,
        line=params.position.line,
        character=params.position.character,
        encoding=encoding,
        prompt_tokens=result.prompt_tokens,
        snippets=result.snippets,
    )
    items = []
    position = params.position
    for index, text in enumerate(result.texts):
        item_id = f"{result.completion_id}-{index}"
        ls.session.offered(
            item_id, uri, params.position.line, params.position.character, text, encoding
        )
        items.append(
            types.InlineCompletionItem(
                insert_text=text,
                range=types.Range(position, position),
                command=types.Command(
                    title="Accept ghostcomplete suggestion",
                    command=protocol.COMMAND_ACCEPT,
                    arguments=[item_id],
                ),
            )
        )
    if ls.settings.debug.report_timings:
        ls.protocol.notify(
            protocol.DID_COMPLETE,
            {
                "id": result.completion_id,
                "uri": uri,
                "skipped": result.skipped,
                "items": result.texts,
                "timingsMs": result.timings_ms,
                "cache": result.cache,
                "backendCalled": result.backend_called,
                "backendCalls": ls.session.counters.backend_calls,
                "prefetches": ls.session.counters.prefetches,
                "prompt": result.prompt,
            },
        )
    return types.InlineCompletionList(items=items)


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
def on_status(ls: GhostServer, *arguments: Any) -> dict[str, str]:
    kind, message = ls.status
    return {
        "kind": kind.value,
        "message": message,
        "backend": ls.settings.backend.kind,
        "version": VERSION,
    }


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
