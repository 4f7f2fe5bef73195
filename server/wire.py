"""JSON-RPC from a client that gets it wrong: what pygls 2.1 alone would mishandle.

- A request whose params do not fit its method (missing, wrong types) is dropped by pygls
  without an answer, so the client waits for it forever: here it is answered with the
  JSON-RPC error (-32602 Invalid params) under its own id.
- A ``Content-Length`` no client will ever fill (say 10^12) makes pygls ask stdin for that
  many bytes in one read, which allocates them up front: MemoryError, and the server is gone.
  Reading in bounded chunks only holds what actually arrives.
- One mis-framed message left pygls' reader out of step for good: ``ChunkedReads`` splits the
  stream itself (server/framing.py) and hands pygls each body under a header it can read.
- Before ``initialize`` pygls runs handlers that need the workspace and answers -32603 with a
  traceback; LSP asks for -32002 (ServerNotInitialized) and for notifications to be dropped
  (``exit`` excepted). A second ``initialize`` would rebuild the workspace (open documents
  lost) and apply the settings again: it is refused with -32600 (InvalidRequest).
- Every notification's future stays in pygls' table of running requests forever (a leak of
  about 400 bytes per keystroke): removed here when its handler is done.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Generator
from typing import Any, BinaryIO
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from ghostcomplete.server.framing import Deframer

log = logging.getLogger("ghostcomplete")

_READ_CHUNK = 1 << 20


class _AlreadyAnswered:
    """What a malformed request becomes once its error answer has been sent."""

    jsonrpc = "2.0"


_ANSWERED = _AlreadyAnswered()


class WireProtocol(LanguageServerProtocol):
    """Combine with other protocol subclasses by inheritance (every override calls super)."""

    # Set when the first initialize request arrives (the client may send nothing else before
    # it is answered, so the order of handling is the order of arrival).
    _initialize_received = False

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            request_id = data.get("id")
            if "method" not in data or not isinstance(request_id, int | str):
                raise  # a notification or a response: nobody waits for an answer
            answer: JsonRpcException = error
            if not self._initialize_received and data.get("method") != types.INITIALIZE:
                answer = JsonRpcServerNotInitialized()
            log.warning("invalid %s request %r: %s", data.get("method"), request_id, error)
            self._send_response(request_id, error=answer.to_response_error())
            return _ANSWERED

    def handle_message(self, message: Any) -> None:
        if message is _ANSWERED:
            return
        method = getattr(message, "method", None)
        request_id: Any = getattr(message, "id", None)
        is_request = method is not None and request_id is not None
        refusal: JsonRpcException | None = None
        if method == types.INITIALIZE and is_request:
            if self._initialize_received:
                refusal = JsonRpcInvalidRequest("initialize was already received")
            self._initialize_received = True
        elif method is not None and not self._initialize_received and method != types.EXIT:
            refusal = JsonRpcServerNotInitialized(f"{method} before initialize")
        if refusal is None:
            super().handle_message(message)
            return
        log.warning("refused %s %r: %s", method, request_id, refusal)
        if is_request:  # a notification before initialize is dropped
            self._send_response(request_id, error=refusal.to_response_error())

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        if callback == self._check_handler_result:
            # A notification: pygls files its future under a fresh uuid in _request_futures
            # and only responses ever take one out, so every keystroke's didChange stayed
            # there for the life of the server. Take it out when the handler is done.
            check = callback

            def callback(future: Any) -> None:
                self._request_futures.pop(msg_id, None)
                check(future)

        super()._execute_handler(msg_id, handler, callback, args, kwargs)


class ChunkedReads:
    """The client's stream as pygls' reader wants it: each message re-framed as
    ``Content-Length: N``, a blank line and the body, whatever framing the client used. Reads
    at most 1 MiB at a time, so a huge length holds only what actually arrives."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._deframer = Deframer(on_problem=lambda message: log.warning("%s", message))
        self._lines: list[bytes] = []
        self._body = b""

    def _next_body(self) -> bytes | None:
        read1 = getattr(self._stream, "read1", None)
        while (body := self._deframer.next_body()) is None:
            if self._deframer.ended:
                return None
            # read1: whatever has arrived (up to 1 MiB), without waiting for more.
            data = read1(_READ_CHUNK) if read1 is not None else self._stream.read(1)
            self._deframer.feed(data)
        return body

    def readline(self) -> bytes:
        if not self._lines:
            body = self._next_body()
            if body is None:
                return b""  # the client went away
            self._lines = [b"Content-Length: %d\r\n" % len(body), b"\r\n"]
            self._body = body
        return self._lines.pop(0)

    def read(self, size: int = -1) -> bytes:
        body, self._body = self._body, b""
        return body


# The executeCommand request being handled (its workDoneToken), seen by the command's task.
_COMMAND_PARAMS: contextvars.ContextVar[types.ExecuteCommandParams | None] = contextvars.ContextVar(
    "ghostcomplete_command_params", default=None
)


class CommandProtocol(LanguageServerProtocol):
    """pygls with two fixes for commands that run a while (edits).

    pygls hands command handlers only the arguments: this keeps the whole request's params (its
    ``workDoneToken``) where the handler's task can read them. And pygls' shutdown cancels the
    pending requests while iterating over their dict, which a pending executeCommand changes
    under it (its future's callbacks run at once): cancel them first, from a copy."""

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    def lsp_workspace__execute_command(
        self, params: types.ExecuteCommandParams
    ) -> Generator[Any, Any, Any]:
        _COMMAND_PARAMS.set(params)
        return (yield from super().lsp_workspace__execute_command(params))

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Generator[Any, Any, None]:
        current = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current and not future.done():
                future.cancel()
        return (yield from super().lsp_shutdown(*args))


class DocumentProtocol(LanguageServerProtocol):
    """Ignores a didChange for a document that is not open: VS Code's Revert and Close sends
    the document's didClose before the revert's didChange, and pygls alone raises a KeyError
    that the user sees as an internal error."""

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        # pygls keys documents by the percent-decoded URI; editors send encoded ones.
        documents = self.workspace.text_documents
        uri = params.text_document.uri
        if uri not in documents and unquote(uri) not in documents:
            log.info("didChange for %s, which is not open: ignored", params.text_document.uri)
            return
        yield from super().lsp_text_document__did_change(params)


def command_params() -> types.ExecuteCommandParams | None:
    """The params of the executeCommand request whose handler is running in this task."""
    return _COMMAND_PARAMS.get()


class GhostProtocol(WireProtocol, CommandProtocol, DocumentProtocol):
    """Answers malformed requests; keeps command params for commands that run a while;
    ignores changes to documents that are not open."""
