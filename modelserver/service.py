"""``ghostcomplete serve-model``: one engine (built-in model, any ONNX model, lookup) served
over HTTP to a team's editors, on Starlette and uvicorn.

Endpoints: ``POST /v1/completions`` (OpenAI-compatible, ``"stream": true`` for server-sent
events sent as the tokens are generated), ``POST /infill`` (llama.cpp),
``POST /v1/chat/completions`` (an instruct model's answers: modelserver/chat.py),
``GET /v1/models``, ``GET /health``. At most ``concurrency`` generations run at once, and
``chat_concurrency`` chat answers beside them; up to ``queue`` more wait their turn, and beyond
that requests are turned away with 503 and Retry-After. A client that hangs up cancels its
generation. SIGINT/SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

from ghostcomplete.backends import Backend, BackendError, create_backend
from ghostcomplete.completion.settings import resolve, settings_layer
from ghostcomplete.modelserver.app import build_app
from ghostcomplete.modelserver.chat import can_chat
from ghostcomplete.modelserver.options import ServeOptions
from ghostcomplete.modelserver.scheduler import Scheduler
from ghostcomplete.modelserver.transport import HttpServer

log = logging.getLogger("ghostcomplete.serve_model")


class ModelService:
    """The HTTP front of one backend, with bounded concurrency and a bounded queue."""

    def __init__(self, backend: Backend, options: ServeOptions) -> None:
        self.backend = backend
        self.options = options
        self.scheduler = Scheduler(
            backend, options.concurrency, options.queue, options.chat_concurrency
        )
        self._http = HttpServer(build_app(self.scheduler, options), options)

    async def start(self) -> str:
        """Listen and serve; the URL it answers on. OSError when it cannot listen."""
        return await self._http.start()

    async def close(self) -> None:
        await self._http.close()


# --- the command ---------------------------------------------------------------------------------
def add_serve_model_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "serve-model",
        help="serve a completion engine over an OpenAI-compatible HTTP API (for a team)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument(
        "--backend", default=None, help="lookup or onnx (default: from --settings, else lookup)"
    )
    parser.add_argument(
        "--settings",
        metavar="JSON",
        help='settings as in initializationOptions; only "backend" is used, '
        'e.g. \'{"backend": {"kind": "onnx", "onnx": {...}}}\' (or @FILE)',
    )
    parser.add_argument("--concurrency", type=int, default=4, help="generations at once")
    parser.add_argument("--queue", type=int, default=64, help="requests waiting, at most")
    parser.add_argument("--timeout-ms", type=int, default=5000, help="per generation")
    parser.add_argument(
        "--chat-concurrency",
        type=int,
        default=1,
        help="chat answers at once (a lane of their own, beside --concurrency)",
    )
    parser.add_argument("--chat-timeout-ms", type=int, default=120_000, help="per chat answer")
    parser.add_argument(
        "--api-key-env", metavar="NAME", help="require the bearer key held in this variable"
    )
    defaults = ServeOptions()
    parser.add_argument(
        "--max-connections",
        type=int,
        default=defaults.max_connections,
        help="open connections at most (more are answered 503 and closed)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header_timeout_s,
        metavar="SECONDS",
        help="time a client has to send a request's head, and then its body",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=defaults.idle_timeout_s,
        metavar="SECONDS",
        help="how long an idle keep-alive connection stays open",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")


def run_serve_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    layer: Any = {}
    if args.settings:
        try:
            layer = settings_layer(args.settings)
        except ValueError as error:
            parser.error(f"--settings: {error}")
    given = layer.get("backend") if isinstance(layer, dict) else None
    backend_layer = dict(given) if isinstance(given, dict) else {}
    unset = given is None or (isinstance(given, dict) and "kind" not in given)
    if args.backend or unset:
        layer = {**(layer if isinstance(layer, dict) else {}), "backend": backend_layer}
        # Not the editors' default (auto): a team's server serves what it is told.
        backend_layer["kind"] = args.backend or "lookup"
    if args.concurrency < 1 or args.queue < 0 or args.timeout_ms < 1:
        parser.error("--concurrency and --timeout-ms must be positive, --queue not negative")
    if args.chat_concurrency < 1 or args.chat_timeout_ms < 1:
        parser.error("--chat-concurrency and --chat-timeout-ms must be positive")
    if args.max_connections < 1 or args.header_timeout <= 0 or args.idle_timeout <= 0:
        parser.error("--max-connections, --header-timeout and --idle-timeout must be positive")
    settings, errors = resolve({"backend": layer.get("backend")} if layer else None)
    if errors:
        parser.error("invalid settings: " + "; ".join(errors))
    if settings.backend.kind == "http":
        parser.error("serve-model serves a local engine (lookup or onnx), not another server")
    api_key = ""
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env, "")
        if not api_key:
            parser.error(f"the environment variable {args.api_key_env} is not set")
    options = ServeOptions(
        host=args.host,
        port=args.port,
        concurrency=args.concurrency,
        queue=args.queue,
        timeout_ms=args.timeout_ms,
        chat_concurrency=args.chat_concurrency,
        chat_timeout_ms=args.chat_timeout_ms,
        api_key=api_key,
        max_connections=args.max_connections,
        header_timeout_s=args.header_timeout,
        idle_timeout_s=args.idle_timeout,
    )
    try:
        backend = create_backend(settings.backend)
    except BackendError as error:
        print(f"ghostcomplete serve-model: {error}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(backend, options))


async def _serve(backend: Backend, options: ServeOptions) -> int:
    service = ModelService(backend, options)
    try:
        url = await service.start()
    except OSError as error:
        print(f"ghostcomplete serve-model: cannot listen: {error}", file=sys.stderr)
        await backend.aclose()
        return 2
    chat = "POST /v1/chat/completions, " if can_chat(backend) else ""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C still interrupts
            loop.add_signal_handler(signum, stop.set)
    print(
        f"ghostcomplete serve-model: listening on {url} (backend {backend.name}; "
        f"POST /v1/completions, POST /infill, {chat}GET /health; "
        f"concurrency {options.concurrency})",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await service.close()
        await backend.aclose()
    print("ghostcomplete serve-model: stopped", flush=True)
    return 0
