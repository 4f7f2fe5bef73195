"""``serve-model`` on uvicorn (HTTP/1.1 through h11), with the guards a server open to a team
needs: a deadline for each request head, an idle timeout between requests, a cap on open
connections, and accept() failures (no file descriptors left) logged at a bounded rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Generator
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from ghostcomplete.modelserver.options import ServeOptions

log = logging.getLogger("ghostcomplete.serve_model")

# A request head bigger than this is refused while it arrives (400); RequestGate in app.py
# holds each line of a complete head to a smaller limit.
MAX_HEAD_BYTES = 65_536
# Seconds running requests get to finish once the server is told to stop.
GRACEFUL_STOP_S = 3.0
# At most one line per this many seconds for each kind of repeated trouble.
LOG_INTERVAL_S = 10.0


def _raw_answer(status: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"message": message, "type": "ghostcomplete"}}).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


_TOO_MANY = _raw_answer("503 Service Unavailable", "too many connections", "Retry-After: 1\r\n")
_TOO_SLOW = _raw_answer("408 Request Timeout", "the request head did not arrive in time")


class RateLimitedLog:
    """A warning that is logged at most once per interval, with how many were left out."""

    def __init__(self, interval_s: float = LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last = -float("inf")
        self._left_out = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._left_out += 1
            return
        if self._left_out:
            message += f" ({self._left_out} more like it not logged)"
        self._last, self._left_out = now, 0
        log.warning(message, *args)


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request head and a connection cap.
    (uvicorn's own timeout only runs between requests, once a response is complete.)"""

    options: ServeOptions = ServeOptions()
    over_cap_log: RateLimitedLog = RateLimitedLog()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.options.max_connections:
            self.over_cap_log(
                "%d connections open, the most allowed: refusing more", len(self.connections) - 1
            )
            transport.write(_TOO_MANY)
            transport.close()
            return
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_head():
            if self._head_timer is None:  # the first bytes of the next request on this one
                self._arm_head_timer()
        elif self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.options.header_timeout_s, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.write(_TOO_SLOW)
            self.transport.close()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The command installs its own SIGINT/SIGTERM handlers; uvicorn's would re-raise the
        # signal after shutdown and end the process with it instead of a clean exit.
        yield


class AcceptErrors:
    """The event loop's exception handler while serving: asyncio reports an accept() that
    failed for want of file descriptors or memory once per waiting connection, with a
    traceback each; log that once per interval instead. Anything else goes on as before."""

    MESSAGE = "socket.accept() out of system resource"

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.log = RateLimitedLog()

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == self.MESSAGE:
            self.log("cannot accept connections: %s", context.get("exception"))
        elif self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named explicitly: asyncio sets TCP_NODELAY only on sockets that say IPPROTO_TCP,
    # and without it every answer written in two parts waits for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """One ASGI app served on one address until ``close``."""

    def __init__(self, app: ASGIApp, options: ServeOptions) -> None:
        protocol = type(
            "ServeModelProtocol",
            (GuardedProtocol,),
            {"options": options, "over_cap_log": RateLimitedLog()},
        )
        self.config = uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            http=protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            timeout_keep_alive=options.idle_timeout_s,
            timeout_graceful_shutdown=GRACEFUL_STOP_S,  # type: ignore[arg-type]
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            server_header=False,
        )
        self.options = options
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._accept_errors: AcceptErrors | None = None

    async def start(self) -> str:
        """Listen and serve; the URL it answers on. OSError when it cannot listen."""
        sock = _listen(self.options.host, self.options.port)
        loop = asyncio.get_running_loop()
        self._accept_errors = AcceptErrors(loop.get_exception_handler())
        loop.set_exception_handler(self._accept_errors)
        self._server = _Server(self.config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise OSError("the server stopped while starting")
            await asyncio.sleep(0.005)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def close(self) -> None:
        """Stop accepting, let running requests finish (briefly), close every connection."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._accept_errors is not None:
            asyncio.get_running_loop().set_exception_handler(self._accept_errors.previous)
            self._accept_errors = None
