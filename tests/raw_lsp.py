"""A raw pipe client: the real server as a subprocess, bytes written to its stdin as they are,
framed answers read from its stdout by a thread. Blocking and synchronous, so that hypothesis
tests can drive it too."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from support import server_executable


class RawLsp:
    """``serve`` on a pipe. Use as a context manager; ``stop`` ends it politely."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            [server_executable(), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
        )
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.notifications: list[dict[str, Any]] = []
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def __enter__(self) -> RawLsp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- reading ------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = 0
            while (line := stream.readline()).strip():
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if not length:
                self._messages.put(None)
                return
            self._messages.put(json.loads(stream.read(length)))

    def _read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for line in stream:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode("utf-8", "replace")

    def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        message = self._messages.get(timeout=timeout)
        if message is None:
            raise EOFError(f"the server closed its output; stderr:\n{self.stderr}")
        return message

    def answer_to(self, request_id: int | str, timeout: float = 10.0) -> dict[str, Any]:
        """The response to ``request_id``; notifications on the way are kept, server requests
        (workspace/configuration, say) are answered with null."""
        while True:
            message = self.receive(timeout)
            if "method" in message:
                if "id" in message:
                    self.send({"jsonrpc": "2.0", "id": message["id"], "result": [None]})
                else:
                    self.notifications.append(message)
                continue
            if message.get("id") == request_id:
                return message

    # --- writing ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: Any) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, request_id: int | str, method: str, params: Any = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.answer_to(request_id)

    def initialize(self, options: Any = None, request_id: int = 0) -> dict[str, Any]:
        params = {"processId": None, "rootUri": None, "capabilities": {}}
        if options is not None:
            params["initializationOptions"] = options
        answer = self.request(request_id, "initialize", params)
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return answer

    def status(self, request_id: int | str) -> dict[str, Any]:
        """The answer to ``ghostcomplete.status``: proof that the server still reads."""
        return self.request(
            request_id,
            "workspace/executeCommand",
            {"command": "ghostcomplete.status", "arguments": []},
        )

    def stop(self) -> int:
        if self.process.returncode is None and self.process.poll() is None:
            try:
                self.request("stop", "shutdown", None)
                self.send({"jsonrpc": "2.0", "method": "exit"})
                self.process.wait(10)
            except (OSError, EOFError, queue.Empty, subprocess.TimeoutExpired):
                pass
            finally:
                if self.process.poll() is None:
                    self.process.kill()
                    self.process.wait()
        return self.process.returncode
