"""A small LSP client that drives ``ghostcomplete serve`` over stdio, as an editor does.

It speaks JSON-RPC with Content-Length framing, answers the requests a server may send
(configuration, progress, registration) and records when each answer arrived, so that
latency is measured at the editor's end of the pipe.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostcomplete.bench.corpus import language_of
from ghostcomplete.context.positions import utf16_length

DID_COMPLETE = "ghostcomplete/didComplete"
DID_FIND_BETTER = "ghostcomplete/didFindBetter"
ACCEPT_COMMAND = "ghostcomplete.accept"
STATUS_COMMAND = "ghostcomplete.status"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def server_command() -> list[str]:
    """$GHOSTCOMPLETE_SERVER, else the ``ghostcomplete`` script next to this interpreter,
    else ``python -m ghostcomplete.server.cli``; always with ``serve`` appended."""
    configured = os.environ.get("GHOSTCOMPLETE_SERVER")
    if configured:
        return [*shlex.split(configured), "serve"]
    script = Path(sys.executable).with_name("ghostcomplete")
    if script.is_file():
        return [str(script), "serve"]
    return [sys.executable, "-m", "ghostcomplete.server.cli", "serve"]


def utf16_position(text: str, offset: int) -> dict[str, int]:
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return {"line": line, "character": utf16_length(text[start:offset])}


@dataclass
class Answer:
    """The answer to one request and when it arrived (``time.perf_counter`` seconds)."""

    result: Any
    error: dict[str, Any] | None
    sent_at: float
    received_at: float

    @property
    def latency_ms(self) -> float:
        return (self.received_at - self.sent_at) * 1000


@dataclass
class ProcessUsage:
    cpu_s: float
    peak_rss_mib: float


@dataclass
class LspClient:
    """One server process and the client end of its pipe."""

    process: asyncio.subprocess.Process
    pending: dict[int, tuple[asyncio.Future[Answer], float]] = field(default_factory=dict)
    notifications: list[tuple[float, str, Any]] = field(default_factory=list)
    did_complete: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 0
    reader: asyncio.Task[None] | None = None
    background: set[asyncio.Future[None]] = field(default_factory=set)
    stderr_tail: list[str] = field(default_factory=list)
    # The params of each workspace/applyEdit the server sent, answered as applied.
    applied_edits: list[dict[str, Any]] = field(default_factory=list)
    # The params of each ghostcomplete/didFindBetter, for a caller that asks again.
    found_better: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    @classmethod
    async def start(
        cls, root: Path, options: dict[str, Any], folders: list[Path] | None = None
    ) -> LspClient:
        """Start the server with ``root`` as its workspace (and ``folders`` as its workspace
        folders, when given: files are named relative to the folder that holds them)."""
        process = await asyncio.create_subprocess_exec(
            *server_command(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        client = cls(process)
        client.reader = asyncio.create_task(client._read())
        client._keep(asyncio.ensure_future(client._drain_stderr()))
        capabilities = {
            "textDocument": {
                "synchronization": {"dynamicRegistration": False},
                "inlineCompletion": {"dynamicRegistration": False},
            },
            "workspace": {
                "executeCommand": {"dynamicRegistration": False},
                # Edit requests (bench edit): the edits are recorded, and applied by the caller.
                "applyEdit": True,
                "workspaceEdit": {"documentChanges": True},
            },
        }
        answer = await client.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "workspaceFolders": [
                    {"uri": folder.as_uri(), "name": folder.name} for folder in folders or [root]
                ],
                "capabilities": capabilities,
                # Benchmark runs are not the user's typing: keep them out of their telemetry
                # unless the run's settings say otherwise.
                "initializationOptions": {"telemetry": {"mode": "off"}, **options},
                "clientInfo": {"name": "ghostcomplete-bench"},
            },
            timeout=60,
        )
        if answer.error:
            raise RuntimeError(f"initialize failed: {answer.error}")
        await client.notify("initialized", {})
        return client

    def _keep(self, future: asyncio.Future[None]) -> None:
        self.background.add(future)
        future.add_done_callback(self.background.discard)

    # --- wire -----------------------------------------------------------------------------
    async def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await self.process.stdin.drain()

    async def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = 0
            while True:
                line = await stream.readline()
                if not line:
                    self._fail_pending("the server closed its output")
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            message = json.loads(await stream.readexactly(length))
            now = time.perf_counter()
            if "method" in message and "id" in message:
                await self._answer_server_request(message)
            elif "method" in message:
                self.notifications.append((now, message["method"], message.get("params")))
                if message["method"] == DID_COMPLETE:
                    self.did_complete.append({**message.get("params", {}), "receivedAt": now})
                elif message["method"] == DID_FIND_BETTER:
                    self.found_better.put_nowait(message.get("params") or {})
            else:
                waiting = self.pending.pop(message.get("id"), None)
                if waiting is not None and not waiting[0].done():
                    future, sent_at = waiting
                    future.set_result(
                        Answer(message.get("result"), message.get("error"), sent_at, now)
                    )

    async def _drain_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while line := await stream.readline():
            self.stderr_tail = [*self.stderr_tail[-40:], line.decode("utf-8", "replace")]

    def _fail_pending(self, why: str) -> None:
        for future, _ in self.pending.values():
            if not future.done():
                future.set_exception(RuntimeError(why + ": " + "".join(self.stderr_tail[-5:])))
        self.pending.clear()

    async def _answer_server_request(self, message: dict[str, Any]) -> None:
        result: Any = None
        if message["method"] == "workspace/configuration":
            result = [None for _ in message.get("params", {}).get("items", [])]
        elif message["method"] == "workspace/applyEdit":
            self.applied_edits.append(message.get("params") or {})
            result = {"applied": True}
        await self._send({"id": message["id"], "result": result})

    # --- requests -------------------------------------------------------------------------
    def send_request(self, method: str, params: Any) -> tuple[int, asyncio.Future[Answer]]:
        """Send without waiting; the future resolves when the answer arrives."""
        self.next_id += 1
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = (future, time.perf_counter())
        message = {"id": self.next_id, "method": method, "params": params}
        self._keep(asyncio.ensure_future(self._send(message)))
        return self.next_id, future

    async def request(self, method: str, params: Any, timeout: float = 30) -> Answer:
        _, future = self.send_request(method, params)
        return await asyncio.wait_for(future, timeout)

    async def status(self) -> dict[str, Any]:
        """The server's ``ghostcomplete.status`` answer; empty when it gave none."""
        answer = await self.request("workspace/executeCommand", {"command": STATUS_COMMAND})
        return answer.result if isinstance(answer.result, dict) else {}

    async def notify(self, method: str, params: Any) -> None:
        await self._send({"method": method, "params": params})

    async def cancel(self, request_id: int) -> None:
        await self.notify("$/cancelRequest", {"id": request_id})

    # --- documents ------------------------------------------------------------------------
    async def open(self, path: Path, text: str, version: int = 1) -> str:
        uri = path.as_uri()
        document = {"uri": uri, "languageId": language_of(str(path)), "version": version}
        await self.notify("textDocument/didOpen", {"textDocument": {**document, "text": text}})
        return uri

    async def close(self, uri: str) -> None:
        await self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    async def insert(self, uri: str, version: int, at: dict[str, int], text: str) -> None:
        """An incremental didChange that inserts ``text`` at ``at``."""
        change = {"range": {"start": at, "end": at}, "text": text}
        await self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
        )

    @staticmethod
    def completion_params(uri: str, at: dict[str, int], invoked: bool = False) -> dict[str, Any]:
        """Automatic (typing, as VS Code sends it) unless ``invoked`` (the editor asked
        explicitly, as after ghostcomplete/didFindBetter)."""
        return {
            "textDocument": {"uri": uri},
            "position": at,
            "context": {"triggerKind": 1 if invoked else 2},
        }

    def report_for(self, answer: Answer, uri: str) -> dict[str, Any] | None:
        """The didComplete notification that belongs to ``answer``: by completion id when it
        has items, else the last one for ``uri`` that arrived since the request was sent."""
        items = (answer.result or {}).get("items", []) if isinstance(answer.result, dict) else []
        wanted = None
        if items:
            arguments = (items[0].get("command") or {}).get("arguments") or [""]
            wanted = str(arguments[0]).rsplit("-", 1)[0]
        for report in reversed(self.did_complete):
            if report["receivedAt"] < answer.sent_at:
                break
            if wanted is not None and report.get("id") == wanted:
                return report
            if wanted is None and report.get("uri") == uri:
                return report
        return None

    # --- process --------------------------------------------------------------------------
    def usage(self) -> ProcessUsage | None:
        """CPU time and peak resident memory of the server process (Linux /proc)."""
        pid = self.process.pid
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        peak_kib = 0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
        return ProcessUsage(round(cpu, 2), round(peak_kib / 1024, 1))

    async def shutdown(self) -> None:
        try:
            await self.request("shutdown", None, timeout=10)
            await self.notify("exit", None)
            await asyncio.wait_for(self.process.wait(), 10)
        except (TimeoutError, RuntimeError, ConnectionError, BrokenPipeError):
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        if self.reader is not None:
            self.reader.cancel()
