"""``ghostcomplete serve-model``: one engine (built-in model, any ONNX model, lookup) served
over HTTP to a team's editors.

Endpoints: ``POST /v1/completions`` (OpenAI-compatible, ``"stream": true`` for server-sent
events), ``POST /infill`` (llama.cpp), ``GET /v1/models``, ``GET /health``. At most
``concurrency`` generations run at once; up to ``queue`` more wait their turn, and beyond that
requests are turned away with 503 and Retry-After. A client that hangs up cancels its
generation. SIGINT/SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from ghostcomplete.backends import Backend, BackendError, create_backend
from ghostcomplete.completion.settings import resolve
from ghostcomplete.modelserver import http11
from ghostcomplete.modelserver.api import (
    Ask,
    cut_at_stops,
    infill_ask,
    openai_answer,
    openai_ask,
    stream_pieces,
)

log = logging.getLogger("ghostcomplete.serve_model")

# How often a running generation checks whether its client has hung up.
_HANGUP_POLL_S = 0.02


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    concurrency: int = 4
    queue: int = 64
    timeout_ms: int = 5000
    # Required bearer key ("" = no key needed: fine on loopback, not on a shared network).
    api_key: str = ""
    model_name: str = "ghostcomplete"


class Overloaded(Exception):
    pass


class ModelService:
    """The HTTP front of one backend, with bounded concurrency and a bounded queue."""

    def __init__(self, backend: Backend, options: ServeOptions) -> None:
        self.backend = backend
        self.options = options
        self.slots = asyncio.Semaphore(options.concurrency)
        self.running = 0
        self.waiting = 0
        self.served = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(
            self._connection, self.options.host, self.options.port
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- connections ---------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                try:
                    request = await http11.read_request(reader)
                except http11.BadRequest as error:
                    await http11.write_json(
                        writer, error.status, _error(str(error)), keep_alive=False
                    )
                    return
                if request is None:
                    return
                keep = await self._answer(request, reader, writer)
                if not (keep and request.keep_alive):
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _answer(
        self, request: http11.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must close."""
        route = (request.method, request.path.rstrip("/") or "/")
        if route == ("GET", "/health"):
            await http11.write_json(writer, 200, self.health())
            return True
        if not self._authorized(request):
            await http11.write_json(writer, 401, _error("missing or wrong API key"))
            return True
        if route in (("GET", "/v1/models"), ("GET", "/models")):
            entry = {"id": self.options.model_name, "object": "model", "owned_by": "ghostcomplete"}
            await http11.write_json(writer, 200, {"object": "list", "data": [entry]})
            return True
        kinds = {"/v1/completions": "openai", "/completions": "openai", "/infill": "infill"}
        kind = kinds.get(route[1])
        if kind is None:
            await http11.write_json(writer, 404, _error(f"no such endpoint: {request.path}"))
            return True
        if route[0] != "POST":
            await http11.write_json(writer, 405, _error("use POST"))
            return True
        deadline = time.monotonic() + self.options.timeout_ms / 1000
        try:
            body = request.json()
            family = self.backend.fim_family
            ask = (
                openai_ask(body, family, deadline)
                if kind == "openai"
                else infill_ask(body, family, deadline)
            )
        except http11.BadRequest as error:
            await http11.write_json(writer, error.status, _error(str(error)))
            return True
        try:
            texts, generate_ms = await self._generate(ask, reader)
        except Overloaded:
            headers = {"Retry-After": "1"}
            await http11.write_json(writer, 503, _error("overloaded: try again"), headers)
            return True
        except BackendError as error:
            await http11.write_json(writer, 500, _error(str(error)))
            return True
        if texts is None:
            return False  # the client hung up
        texts = [cut_at_stops(text, ask.stop) for text in texts]
        timing = {"Server-Timing": f"generate;dur={generate_ms:.3f}"}
        if ask.stream:
            await self._stream(kind, ask, texts, timing, writer)
        elif kind == "openai":
            model = ask.model or self.options.model_name
            await http11.write_json(writer, 200, openai_answer(texts, model), timing)
        else:
            answer: dict[str, Any] = {
                "content": texts[0] if texts else "",
                "stop": True,
                "model": self.options.model_name,
                "timings": {"predicted_ms": generate_ms},
            }
            await http11.write_json(writer, 200, answer, timing)
        return True

    async def _stream(
        self,
        kind: str,
        ask: Ask,
        texts: list[str],
        headers: dict[str, str],
        writer: asyncio.StreamWriter,
    ) -> None:
        stream = http11.ChunkedStream(writer)
        await stream.start(headers)
        text = texts[0] if texts else ""
        if kind == "openai":
            base = openai_answer([""], ask.model or self.options.model_name)
            for piece in stream_pieces(text):
                choice = {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
                await stream.event(json.dumps({**base, "choices": [choice]}))
            final = {"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}
            await stream.event(json.dumps({**base, "choices": [final]}))
            await stream.event("[DONE]")
        else:
            for piece in stream_pieces(text):
                await stream.event(json.dumps({"content": piece, "stop": False}))
            await stream.event(json.dumps({"content": "", "stop": True}))
        await stream.end()

    # --- generation ----------------------------------------------------------------------------
    async def _generate(
        self, ask: Ask, reader: asyncio.StreamReader
    ) -> tuple[list[str] | None, float]:
        """Candidates (None if the client hung up first) and the milliseconds generating."""
        if self.slots.locked() and self.waiting >= self.options.queue:
            raise Overloaded
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        started = time.monotonic()
        try:
            work = asyncio.ensure_future(self.backend.generate(ask.prompt, ask.limits))
            while not work.done():
                await asyncio.wait([work], timeout=_HANGUP_POLL_S)
                if not work.done() and reader.at_eof():
                    work.cancel()  # nobody is waiting for this answer any more
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                    log.info("client hung up: generation cancelled")
                    return None, 0.0
            candidates = work.result()
        finally:
            self.running -= 1
            self.slots.release()
        self.served += 1
        return [c.text for c in candidates], (time.monotonic() - started) * 1000

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "backend": self.backend.name,
            "model": self.options.model_name,
            "running": self.running,
            "queued": self.waiting,
            "served": self.served,
            "concurrency": self.options.concurrency,
        }

    def _authorized(self, request: http11.Request) -> bool:
        if not self.options.api_key:
            return True
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self.options.api_key}"
        return hmac.compare_digest(given.encode(), expected.encode())


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "ghostcomplete"}}


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
        "--api-key-env", metavar="NAME", help="require the bearer key held in this variable"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")


def run_serve_model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    layer: Any = {}
    if args.settings:
        text = args.settings
        if text.startswith("@"):
            try:
                text = open(text[1:], encoding="utf-8").read()  # noqa: SIM115
            except OSError as error:
                parser.error(f"cannot read {args.settings[1:]}: {error.strerror or error}")
        try:
            layer = json.loads(text)
        except ValueError as error:
            parser.error(f"--settings is not JSON: {error}")
    if args.backend:
        backend_layer = dict(layer.get("backend") or {}) if isinstance(layer, dict) else {}
        layer = {**(layer if isinstance(layer, dict) else {}), "backend": backend_layer}
        backend_layer["kind"] = args.backend
    if args.concurrency < 1 or args.queue < 0 or args.timeout_ms < 1:
        parser.error("--concurrency and --timeout-ms must be positive, --queue not negative")
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
        args.host, args.port, args.concurrency, args.queue, args.timeout_ms, api_key
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C still interrupts
            loop.add_signal_handler(signum, stop.set)
    print(
        f"ghostcomplete serve-model: listening on {url} (backend {backend.name}; "
        f"POST /v1/completions, POST /infill, GET /health; concurrency {options.concurrency})",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await service.close()
        await backend.aclose()
    print("ghostcomplete serve-model: stopped", flush=True)
    return 0
