"""The server's state: settings, the pipeline and session, recent files, status and messages.

server/lsp.py registers the handlers on one GhostServer; this module holds what they share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from ghostcomplete.backends import BackendError, LookupBackend
from ghostcomplete.completion.backend_slot import BackendSlot
from ghostcomplete.completion.pipeline import CompletionRequest, Pipeline
from ghostcomplete.completion.problems import (
    MessageThrottle,
    Problem,
    Severity,
    backend_problem,
    degraded_backend_problem,
    dense_problem,
    internal_problem,
    settings_problem,
    untrusted_settings_problem,
)
from ghostcomplete.completion.session import CompletionSession
from ghostcomplete.completion.settings import Settings, install_or_fall_back, resolve
from ghostcomplete.completion.workspace_trust import client_layers
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.recent_files import RecentFiles
from ghostcomplete.server import protocol
from ghostcomplete.server.wire import GhostProtocol
from ghostcomplete.telemetry.recorder import TelemetryRecorder
from ghostcomplete.telemetry.store import resolve_path

T = TypeVar("T")

# How long a request runs before the status says busy.
BUSY_AFTER_S = 0.25

log = logging.getLogger("ghostcomplete")

try:
    VERSION = version("ghostcomplete")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"


def plain(value: Any) -> Any:
    """Client-sent params of methods pygls does not know arrive as namedtuples: make dicts."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


class GhostServer(LanguageServer):
    """Server state: settings, the pipeline and session, recent files, status and messages."""

    def __init__(self) -> None:
        super().__init__(
            "ghostcomplete",
            VERSION,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=GhostProtocol,
        )
        self.settings = Settings()
        self.pipeline = Pipeline(LookupBackend(), self.settings)
        self.pipeline.on_dense_problem = self.dense_failed
        self._loop: asyncio.AbstractEventLoop | None = None
        self.session = CompletionSession(
            self.pipeline,
            on_backend_error=self.backend_failed,
            on_backend_recovered=self.backend_recovered,
            on_better_answer=self.found_better,
        )
        self.backends = BackendSlot(self.pipeline)
        self.recent = RecentFiles()
        self.telemetry = TelemetryRecorder(
            read_document=self.open_text,
            offers=self.session.offers,
            on_problem=lambda message: self.tell_once(
                "telemetry", message, types.MessageType.Warning
            ),
        )
        self.init_options: Any = None
        # Bumped by every configuration change, so that a slow pull cannot undo a newer push.
        self.config_generation = 0
        self.messages = MessageThrottle()
        self.status = (protocol.StatusKind.NORMAL, "")
        self._configured = False
        self._in_flight = 0
        self._busy_shown = False

    # --- settings -----------------------------------------------------------------------
    def apply_client_settings(self, initialization: Any, workspace: Any = None) -> None:
        """initializationOptions and, if any, the workspace configuration; the restricted
        settings of the latter count only when the client says the workspace is trusted
        (completion/workspace_trust.py)."""
        layers, ignored = client_layers(initialization, workspace)
        if ignored:
            self.report(untrusted_settings_problem(ignored))
        self.apply_settings(*layers)

    def apply_settings(self, *layers: Any) -> None:
        settings, errors = resolve(*layers)
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        first = not self._configured
        self._configured = True

        def install(settings: Settings) -> None:
            # auto's choice depends on completion.timeoutMs too.
            deadline_changed = settings.deadline_ms != self.settings.deadline_ms
            auto = settings.backend.kind == "auto"
            if first or settings.backend != self.settings.backend or (auto and deadline_changed):
                self.build_backend(settings)
            if not first and settings != self.settings:
                self.session.forget_answers()
            self.settings = settings
            self.pipeline.configure(settings)
            self.telemetry.configure(
                settings.telemetry.mode == "on",
                resolve_path(settings.telemetry.path),
                settings.telemetry.capture_content,
            )

        # A value that passed validation and still raises: that field keeps its value in force.
        in_force = self.settings if not first else Settings()
        settings, failures = install_or_fall_back(settings, in_force, install)
        errors += failures
        if errors:
            self.report(settings_problem(errors))
        elif self.pipeline.dense_problem is not None:
            self.set_status(protocol.StatusKind.WARNING, self.pipeline.dense_problem)
        elif self.backends.degraded is not None:
            pass  # its warning stays (build_backend reported it)
        elif self.status[0] is protocol.StatusKind.WARNING:
            self.set_status(protocol.StatusKind.NORMAL, "")

    def build_backend(self, settings: Settings) -> None:
        was_degraded = self.backends.degraded is not None
        error = self.backends.build(settings.backend, settings.deadline_ms)
        if error is not None:
            self.report(backend_problem(error))
        elif self.backends.degraded is not None:
            self.report(degraded_backend_problem(self.backends.degraded))
        elif was_degraded and self.status[0] is protocol.StatusKind.WARNING:
            self.set_status(protocol.StatusKind.NORMAL, "")  # the model loads now
        log.info("backend: %s", self.backends.chosen)

    def backend_ready(self) -> bool:
        """False while the configured backend cannot be built (tried again now and then)."""
        if self.backends.retry_due():
            self.build_backend(self.settings)
        return self.backends.broken is None

    def backend_failed(self, error: BackendError) -> None:
        self.report(backend_problem(error), per_request=True)

    def backend_recovered(self) -> None:
        if self.status[0] is protocol.StatusKind.ERROR and self.backends.broken is None:
            self.set_status(protocol.StatusKind.NORMAL, "")

    def dense_failed(self, message: str) -> None:
        """Dense retrieval is off (its model is missing or failed): one message and a warning
        status; completions go on with BM25 only. May be called from the indexing thread."""
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop:
            loop.call_soon_threadsafe(self.dense_failed, message)
            return
        self.report(dense_problem(message))

    def show_file_activity(self, skipped: str | None) -> None:
        """Inactive while the user is in a file we will not complete in; Normal again after."""
        inactive = skipped is not None and skipped.startswith(("excluded", "completions are"))
        if inactive and self.status != (protocol.StatusKind.INACTIVE, skipped):
            self.set_status(protocol.StatusKind.INACTIVE, skipped or "")
        elif not inactive and self.status[0] is protocol.StatusKind.INACTIVE:
            self.set_status(protocol.StatusKind.NORMAL, "")

    # --- messages and status ------------------------------------------------------------
    def report(self, problem: Problem, *, per_request: bool = False) -> None:
        """One message (at most one per topic within the hour) and, for a lasting problem,
        the status. A problem met by a request (``per_request``) while an error is shown
        updates the status without a new event: no status flicker per keystroke."""
        error = problem.severity is Severity.ERROR
        kind = protocol.StatusKind.ERROR if error else protocol.StatusKind.WARNING
        message_type = types.MessageType.Error if error else types.MessageType.Warning
        self.tell_once(problem.topic, problem.message, message_type)
        if not problem.lasting or self.status == (kind, problem.summary):
            return
        if per_request and self.status[0] is protocol.StatusKind.ERROR:
            self.status = (kind, problem.summary)  # the latest word, no new event
        else:
            self.set_status(kind, problem.summary)

    def tell_once(self, key: str, message: str, kind: types.MessageType) -> None:
        """Log ``message``, and show it unless a message on ``key`` was shown within the hour."""
        log.warning("%s", message)
        if self.messages.allows(key):
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Out-of-band errors (a notification handler failed, a message could not be read;
        pygls logs the traceback): told once an hour, not as a popup per bad message.
        Requests answer with their own error instead."""
        if source is FeatureRequestError:
            return
        self.report(internal_problem(error))

    def set_status(self, kind: protocol.StatusKind, message: str, busy: bool = False) -> None:
        self.status = (kind, message)
        self.protocol.notify(
            protocol.DID_CHANGE_STATUS, {"kind": kind.value, "message": message, "busy": busy}
        )

    def found_better(self, request: CompletionRequest) -> None:
        """A request answered early (the lookup's suggestion while the model wrote) has a
        better answer now: the editor is asked to request again, unless the document
        changed since (the next keystroke's request finds the answer in the caches)."""
        document = self.text_document(request.document.uri)
        if document is None or (document.version or 0) != request.document.version:
            return
        self.protocol.notify(
            protocol.DID_FIND_BETTER,
            {
                "uri": request.document.uri,
                "version": request.document.version,
                "position": {"line": request.line, "character": request.character},
            },
        )

    async def while_busy(self, work: Awaitable[T]) -> T:
        """Awaits ``work``; past BUSY_AFTER_S the status says busy until no request is left.
        Answers faster than that (cache hits, the lookup backend) send no status at all: no
        flicker per keystroke, and a slow model still shows that it is working."""
        self._in_flight += 1
        timer = asyncio.get_running_loop().call_later(BUSY_AFTER_S, self._show_busy)
        try:
            return await work
        finally:
            timer.cancel()
            self._in_flight -= 1
            if self._in_flight == 0 and self._busy_shown:
                self._busy_shown = False
                self.set_status(*self.status)

    def _show_busy(self) -> None:
        if self._in_flight and not self._busy_shown:
            self._busy_shown = True
            self.set_status(*self.status, busy=True)

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
