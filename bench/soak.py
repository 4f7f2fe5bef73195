"""Soak and burst: does the server hold up over thousands of completions?

``python -m ghostcomplete.bench.soak [--quick] [--completions N] [--json PATH]``

Drives ``ghostcomplete serve`` over stdio, as an editor does, with realistic editing of real
code (files of the Python standard library copied into a scratch workspace): a stretch of
whole lines is cut out of a file and typed back character by character; every keystroke is
an incremental ``didChange`` followed by a ``textDocument/inlineCompletion`` that is awaited;
every so often a suggestion is shown and accepted, a document is closed and reopened, the
focus moves to another file. After each stretch the document is put back as it was, so the
documents' size does not grow with the run and what grows is the server.

Measured:
- the server's resident memory (``VmRSS`` from /proc/<pid>/status) after the warm-up (the
  first tenth of the completions) and at the end: growth must stay under 10 %;
- per window of completions, the p50/p99 of the latency at the client and of the server's
  overhead (latency minus the backend's own time, from the didComplete report): the last
  window's p99 must stay within 2x the first's (plus 2 ms of timer noise);
- a burst of typing: N requests within one second on one document, each after a keystroke,
  none awaited, as a fast typist with a client that does not cancel would send them. Every
  request must be answered, the superseded ones with nothing, and the last one promptly
  (within 1 s of being sent): no backlog.

The backend is the lookup engine (no model), so the figures are the server's own cost.
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostcomplete.bench.lsp_client import ACCEPT_COMMAND, Answer, LspClient, utf16_position
from ghostcomplete.bench.metrics import percentile

# Real code to type: modules of the standard library of the interpreter running this.
_SOURCES = (
    "textwrap.py",
    "json/decoder.py",
    "json/encoder.py",
    "csv.py",
    "fractions.py",
    "dataclasses.py",
    "argparse.py",
    "statistics.py",
    "heapq.py",
    "shlex.py",
)
_STRETCH_LINES = (3, 8)
_ACCEPT_SHARE = 0.5  # of the suggestions that match what is typed next, the share taken
_REOPEN_EVERY = 400  # keystrokes between close-and-reopen of the current document
_WINDOWS = 9
_RSS_GROWTH_LIMIT = 0.10
_P99_RATIO_LIMIT = 2.0
_P99_SLACK_MS = 2.0
_BURST_LAST_LIMIT_MS = 1000.0


@dataclass
class Window:
    completions: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    overhead_p50_ms: float | None
    overhead_p99_ms: float | None


@dataclass
class Burst:
    requests: int
    sent_in_ms: float
    answered: int
    with_items: int
    errors: int
    backend_calls: int
    last_answered_ms: float
    all_answered_ms: float


@dataclass
class SoakResult:
    completions: int
    warmup: int
    keystrokes: int = 0
    accepted: int = 0
    reopened: int = 0
    with_items: int = 0
    errors: int = 0
    rss_start_mib: float = 0.0
    rss_warm_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_growth: float = 0.0
    rss_samples_mib: list[float] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    burst: Burst | None = None
    wall_s: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 2)
    raise RuntimeError(f"no VmRSS for process {pid}")


def copy_sources(root: Path) -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    copied = []
    for name in _SOURCES:
        source = stdlib / name
        if not source.is_file():
            continue
        target = root / name.replace("/", "_")
        shutil.copyfile(source, target)
        copied.append(target)
    if len(copied) < 2:
        raise RuntimeError(f"too few standard-library sources under {stdlib}")
    return copied


@dataclass
class Editor:
    """The client's side of the documents: what is open and at which version."""

    client: LspClient
    texts: dict[Path, str]
    versions: dict[Path, int] = field(default_factory=dict)

    async def open(self, path: Path) -> str:
        self.versions[path] = 1
        return await self.client.open(path, self.texts[path], 1)

    async def replace_all(self, path: Path, old: str, new: str) -> None:
        """One incremental change that replaces the whole of ``old`` with ``new``."""
        self.versions[path] += 1
        end = utf16_position(old, len(old))
        change = {"range": {"start": {"line": 0, "character": 0}, "end": end}, "text": new}
        await self.client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": path.as_uri(), "version": self.versions[path]},
                "contentChanges": [change],
            },
        )

    async def insert(self, path: Path, text: str, offset: int, typed: str) -> None:
        self.versions[path] += 1
        await self.client.insert(
            path.as_uri(), self.versions[path], utf16_position(text, offset), typed
        )


def _stretch(text: str, rng: random.Random) -> tuple[int, str]:
    """A run of whole, non-blank lines to cut out and type back: (offset, the text)."""
    lines = text.splitlines(keepends=True)
    for _ in range(50):
        first = rng.randrange(len(lines) - 10)
        count = rng.randint(*_STRETCH_LINES)
        chunk = "".join(lines[first : first + count])
        if chunk.strip() and len(chunk) < 400:
            return sum(len(line) for line in lines[:first]), chunk
    return 0, lines[0]


def _items(answer: Answer) -> list[dict[str, Any]]:
    result = answer.result
    if isinstance(result, dict):
        return list(result.get("items") or [])
    return list(result or []) if isinstance(result, list) else []


async def _complete(client: LspClient, uri: str, at: dict[str, int]) -> Answer:
    # Invoked: no debounce, every request is served.
    params = client.completion_params(uri, at, invoked=True)
    return await client.request("textDocument/inlineCompletion", params, timeout=30)


async def soak(completions: int, seed: int, burst_size: int) -> SoakResult:
    rng = random.Random(seed)
    started = time.monotonic()
    result = SoakResult(completions, warmup=max(1, completions // 10))
    with tempfile.TemporaryDirectory(prefix="ghostcomplete-soak-") as scratch:
        root = Path(scratch)
        paths = copy_sources(root)
        options = {
            "debug": {"reportTimings": True},
            "telemetry": {"mode": "on", "path": str(root / "telemetry.sqlite3")},
        }
        client = await LspClient.start(root, options)
        try:
            result.rss_start_mib = rss_mib(client.process.pid)
            editor = Editor(client, {path: path.read_text() for path in paths})
            for path in paths:
                await editor.open(path)
            await _type(client, editor, paths, rng, result)
            result.rss_end_mib = rss_mib(client.process.pid)
            result.burst = await _burst(client, editor, paths[0], burst_size)
            status = await client.request(
                "workspace/executeCommand", {"command": "ghostcomplete.status", "arguments": []}
            )
            if status.error or client.process.returncode is not None:
                result.errors += 1
        finally:
            await client.shutdown()
    result.wall_s = round(time.monotonic() - started, 1)
    _judge(result)
    return result


async def _type(
    client: LspClient,
    editor: Editor,
    paths: list[Path],
    rng: random.Random,
    result: SoakResult,
) -> None:
    latencies: list[float] = []
    overheads: list[float] = []
    done = 0
    while done < result.completions:
        path = rng.choice(paths)
        uri = path.as_uri()
        await client.notify("textDocument/didFocus", {"textDocument": {"uri": uri}})
        original = editor.texts[path]
        start, chunk = _stretch(original, rng)
        # Cut the stretch out, then type it back in.
        text = original[:start] + original[start + len(chunk) :]
        await editor.replace_all(path, original, text)
        typed = 0
        while typed < len(chunk) and done < result.completions:
            offset = start + typed
            await editor.insert(path, text, offset, chunk[typed])
            text = text[:offset] + chunk[typed] + text[offset:]
            typed += 1
            result.keystrokes += 1
            answer = await _complete(client, uri, utf16_position(text, start + typed))
            done += 1
            if answer.error:
                result.errors += 1
            items = _items(answer)
            report = client.report_for(answer, uri)
            latencies.append(answer.latency_ms)
            backend = float((report or {}).get("timingsMs", {}).get("backend", 0.0))
            overheads.append(max(0.0, answer.latency_ms - backend))
            if done == result.warmup:
                result.rss_warm_mib = rss_mib(client.process.pid)
            if done % max(1, result.completions // 50) == 0:
                result.rss_samples_mib.append(rss_mib(client.process.pid))
            if items:
                result.with_items += 1
                suggestion = str(items[0].get("insertText", ""))
                rest = chunk[typed:]
                if suggestion and rest.startswith(suggestion) and rng.random() < _ACCEPT_SHARE:
                    # Shown, then taken: inserted in one change and the command run.
                    await client.notify("textDocument/didShowCompletion", {"item": items[0]})
                    await editor.insert(path, text, start + typed, suggestion)
                    text = text[: start + typed] + suggestion + text[start + typed :]
                    typed += len(suggestion)
                    command = items[0].get("command") or {}
                    await client.request(
                        "workspace/executeCommand",
                        {"command": ACCEPT_COMMAND, "arguments": command.get("arguments", [])},
                    )
                    result.accepted += 1
            if result.keystrokes % _REOPEN_EVERY == 0:
                await client.close(uri)
                editor.texts[path] = original
                await editor.open(path)
                text = original
                typed = 0
                result.reopened += 1
                break
        else:
            # Put the document back as it was: the run must not grow the documents.
            await editor.replace_all(path, text, original)
    result.windows = _windows(latencies[result.warmup :], overheads[result.warmup :])


def _windows(latencies: list[float], overheads: list[float]) -> list[Window]:
    size = max(1, len(latencies) // _WINDOWS)
    windows = []
    for first in range(0, size * _WINDOWS, size):
        part = latencies[first : first + size]
        extra = overheads[first : first + size]
        if not part:
            break
        windows.append(
            Window(
                len(part),
                _round(percentile(part, 50)),
                _round(percentile(part, 99)),
                _round(percentile(extra, 50)),
                _round(percentile(extra, 99)),
            )
        )
    return windows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def _burst(client: LspClient, editor: Editor, path: Path, size: int) -> Burst:
    """``size`` keystrokes with a request after each, spread over one second, none awaited."""
    uri = path.as_uri()
    await client.notify("textDocument/didFocus", {"textDocument": {"uri": uri}})
    text = editor.texts[path]
    offset = text.index("\n", len(text) // 2) + 1
    typing = ("def process_items(items):\n    return [item.value for item in items]\n" * 50)[:size]
    backend_calls_before = _backend_calls(client)
    futures = []
    began = time.perf_counter()
    spacing = 1.0 / size
    for index, character in enumerate(typing):
        await editor.insert(path, text, offset, character)
        text = text[:offset] + character + text[offset:]
        offset += 1
        params = client.completion_params(uri, utf16_position(text, offset))
        futures.append(client.send_request("textDocument/inlineCompletion", params)[1])
        delay = began + (index + 1) * spacing - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    sent = time.perf_counter()
    answers = await asyncio.wait_for(asyncio.gather(*futures), 60)
    editor.texts[path] = text
    report = client.report_for(answers[-1], uri)
    return Burst(
        requests=size,
        sent_in_ms=round((sent - began) * 1000, 1),
        answered=sum(1 for answer in answers if answer.error is None),
        with_items=sum(1 for answer in answers if _items(answer)),
        errors=sum(1 for answer in answers if answer.error is not None),
        backend_calls=(report or {}).get("backendCalls", 0) - backend_calls_before,
        last_answered_ms=round(answers[-1].latency_ms, 1),
        all_answered_ms=round((max(a.received_at for a in answers) - began) * 1000, 1),
    )


def _backend_calls(client: LspClient) -> int:
    return int(client.did_complete[-1].get("backendCalls", 0)) if client.did_complete else 0


def _judge(result: SoakResult) -> None:
    warm = result.rss_warm_mib or result.rss_start_mib
    result.rss_growth = round((result.rss_end_mib - warm) / warm, 4) if warm else 0.0
    result.checks["no errors"] = result.errors == 0
    result.checks["rss growth < 10 % after warm-up"] = result.rss_growth < _RSS_GROWTH_LIMIT
    p99s = [w.overhead_p99_ms for w in result.windows if w.overhead_p99_ms is not None]
    if p99s:
        result.checks["p99 overhead stable (last window <= 2x first + 2 ms)"] = (
            p99s[-1] <= p99s[0] * _P99_RATIO_LIMIT + _P99_SLACK_MS
        )
    burst = result.burst
    if burst is not None:
        result.checks["burst: every request answered"] = burst.answered == burst.requests
        result.checks["burst: the last request answered within 1 s"] = (
            burst.last_answered_ms <= _BURST_LAST_LIMIT_MS
        )


def render(result: SoakResult) -> str:
    lines = [
        f"completions {result.completions} (warm-up {result.warmup}), keystrokes "
        f"{result.keystrokes}, with items {result.with_items}, accepted {result.accepted}, "
        f"reopened {result.reopened}, errors {result.errors}, wall {result.wall_s} s",
        f"RSS MiB: start {result.rss_start_mib}, after warm-up {result.rss_warm_mib}, end "
        f"{result.rss_end_mib} -> growth {result.rss_growth * 100:.1f} %",
        "",
        "| window | completions | latency p50 | latency p99 | overhead p50 | overhead p99 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for index, window in enumerate(result.windows, start=1):
        lines.append(
            f"| {index} | {window.completions} | {window.latency_p50_ms} | "
            f"{window.latency_p99_ms} | {window.overhead_p50_ms} | {window.overhead_p99_ms} |"
        )
    if result.burst is not None:
        burst = result.burst
        lines += [
            "",
            f"burst: {burst.requests} requests sent in {burst.sent_in_ms} ms; answered "
            f"{burst.answered}, with items {burst.with_items}, errors {burst.errors}, backend "
            f"calls {burst.backend_calls}; last answered in {burst.last_answered_ms} ms; all "
            f"answered {burst.all_answered_ms} ms after the first was sent",
        ]
    lines.append("")
    lines += [f"[{'ok' if ok else 'FAIL'}] {name}" for name, ok in result.checks.items()]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="1,500 completions and the burst (about 20 s)"
    )
    parser.add_argument("--completions", type=int, default=None, help="default 10,000")
    parser.add_argument("--burst", type=int, default=1000, help="requests in the burst second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")


def run_from(args: argparse.Namespace) -> int:
    """Run with parsed arguments; exit code 1 when a check fails."""
    completions = args.completions or (1500 if args.quick else 10_000)
    result = asyncio.run(soak(completions, args.seed, args.burst))
    print(render(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0 if result.passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostcomplete.bench.soak", description=__doc__)
    add_arguments(parser)
    return run_from(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
