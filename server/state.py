"""The server's state: settings, the pipeline and session, recent files, status and messages.

server/lsp.py registers the handlers on one GhostServer; this module holds what they share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from ghostcomplete.backends import Backend, BackendError, LookupBackend, create_backend
from ghostcomplete.completion.pipeline import CompletionResult, Pipeline
from ghostcomplete.completion.session import CompletionSession
from ghostcomplete.completion.settings import Settings, resolve
from ghostcomplete.completion.workspace_trust import client_layers
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.recent_files import RecentFiles
from ghostcomplete.server import protocol
from ghostcomplete.server.wire import GhostProtocol
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
    """Server state: settings, the pipeline, recent files, offers, in-flight requests."""

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
    def apply_client_settings(self, initialization: Any, workspace: Any = None) -> None:
        """initializationOptions and, if any, the workspace configuration; the restricted
        settings of the latter count only when the client says the workspace is trusted
        (completion/workspace_trust.py)."""
        layers, ignored = client_layers(initialization, workspace)
        if ignored:
            self.tell_once(
                "untrusted-settings",
                "ghostcomplete: ignored workspace settings " + ", ".join(ignored) + " (the "
                "workspace is not trusted; set them in your user settings)",
                types.MessageType.Warning,
            )
        self.apply_settings(*layers)

    def apply_settings(self, *layers: Any) -> None:
        settings, errors = resolve(*layers)
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        first = not self._configured
        self._configured = True
        if first or settings.backend != self.settings.backend:
            self.replace_backend(settings)
        if not first and settings != self.settings:
            self.session.forget_answers()
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
        elif self.pipeline.dense_problem is not None:
            self.set_status(protocol.StatusKind.WARNING, self.pipeline.dense_problem)
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
        self.tell_once("dense", f"ghostcomplete: {message}", types.MessageType.Warning)
        self.set_status(protocol.StatusKind.WARNING, message)

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
