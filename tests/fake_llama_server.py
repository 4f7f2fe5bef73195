"""A stand-in for llama.cpp's ``llama-server`` binary: it takes the same command line, answers
``/health``, ``/v1/completions`` and ``/infill`` (whole or SSE) with one fixed text, and
records its command line, its pid and every request body in ``$FAKE_LLAMA_LOG`` (JSON lines).

For the tests of ``bench acceptance --llama-server`` on machines without ``make peers``.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "value_from_the_fake_llama_server"


def record(entry: dict[str, Any]) -> None:
    with open(os.environ["FAKE_LLAMA_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def option(name: str) -> str:
    return sys.argv[sys.argv.index(name) + 1]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no line per request
        pass

    def send(self, payload: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.send(json.dumps({"status": "ok"}).encode(), "application/json")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        record({"path": self.path, "body": body})
        if self.path == "/infill":
            events = [{"content": ANSWER, "stop": False}, {"content": "", "stop": True}]
            whole: dict[str, Any] = {"content": ANSWER}
        else:
            events = [{"choices": [{"index": 0, "text": ANSWER}]}]
            whole = {"choices": [{"index": 0, "text": ANSWER}]}
        if body.get("stream"):
            stream = "".join(f"data: {json.dumps(event)}\n\n" for event in events)
            if self.path != "/infill":
                stream += "data: [DONE]\n\n"
            self.send(stream.encode(), "text/event-stream")
        else:
            self.send(json.dumps(whole).encode(), "application/json")


def main() -> None:
    record({"argv": sys.argv[1:], "pid": os.getpid()})
    server = ThreadingHTTPServer((option("--host"), int(option("--port"))), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
