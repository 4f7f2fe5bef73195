"""What an operator sets for ``serve-model``: address, admission limits, key and timeouts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    concurrency: int = 4
    queue: int = 64
    timeout_ms: int = 5000
    # Chat answers (/v1/chat/completions): at most this many at once, in a lane of their own
    # so that they never hold the completions' slots, each abandoned after chat_timeout_ms.
    chat_concurrency: int = 1
    chat_timeout_ms: int = 120_000
    # Required bearer key ("" = no key needed: fine on loopback, not on a shared network).
    api_key: str = ""
    model_name: str = "ghostcomplete"
    # Open connections at most; one more is answered 503 and closed at once, so that clients
    # that hold sockets open cannot run the process out of file descriptors.
    max_connections: int = 256
    # Seconds a client has to send a whole request head (and, separately, its body) before
    # the connection is closed: a connection costs nothing to hold open otherwise.
    header_timeout_s: float = 10.0
    # Seconds an idle keep-alive connection stays open between requests.
    idle_timeout_s: float = 30.0
