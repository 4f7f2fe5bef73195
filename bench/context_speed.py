"""``ghostcomplete bench context``: what gathering, ranking and packing context costs in the
running server, with 20 recent files of 2,000 lines open (the workspace of issue 4).

The files are the local CPython standard library's modules of at least 2,000 lines (outside
its tests), in name order, cut to
2,000 lines and opened under a temporary folder (the editor state is all the server sees).
For each context method the client types one character at the end of a random line of the
21st file and asks for a completion, as an editor does; the server's own stage timings
(``ghostcomplete/didComplete``) give the cost of ``context`` (cut, gate, syntax facts) and
``rank`` (snippet choice, packing, prompt rendering). Peak memory comes from /proc.

``--dense FOLDER`` adds ``ranked+dense``: ranked with dense retrieval on (``ranker.dense``)
and that embedding model; its row also says how long the server took to embed the 20 files'
chunks in its indexing thread (the completions are asked once that is done).
"""

from __future__ import annotations

import asyncio
import random
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from ghostcomplete.bench.lsp_client import LspClient

LINES = 2000
FILES = 20
MODES = ("none", "copilot", "ranked")


def workspace_files(count: int = FILES + 1, lines: int = LINES) -> list[tuple[str, str]]:
    """(name, text) of ``count`` standard-library modules with at least ``lines`` lines."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    chosen: list[tuple[str, str]] = []
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.count("\n") >= lines:
            name = "_".join(path.relative_to(stdlib).parts)
            chosen.append((name, "\n".join(text.split("\n")[:lines])))
        if len(chosen) == count:
            break
    return chosen


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


DENSE_MODE = "ranked+dense"


async def _embedded(client: LspClient, started: float) -> dict[str, Any]:
    """Wait until the server's dense index has no chunk left to embed; what it took."""
    while True:
        status = await client.status()
        dense = status.get("dense") or {}
        if not dense.get("pending"):
            return {
                "seconds": round(time.monotonic() - started, 1),
                "vectors": dense.get("vectors"),
                "status": status.get("message") or status.get("kind"),
            }
        await asyncio.sleep(0.1)


async def _measure(
    mode: str, files: list[tuple[str, str]], samples: int, seed: int, dense: str | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ghostcomplete-context-") as folder:
        root = Path(folder)
        context: dict[str, Any] = {"snippets": mode}
        if mode == DENSE_MODE:
            context = {"snippets": "ranked", "dense": {"enabled": True, "path": dense}}
        options = {
            "context": context,
            "debug": {"reportTimings": True},
            "completion": {"debounce": "fixed", "debounceMs": 0, "prefetch": "off"},
        }
        client = await LspClient.start(root, options)
        try:
            *neighbours, (target_name, target_text) = files
            opened = time.monotonic()
            for name, text in neighbours:
                await client.open(root / name, text)
            uri = await client.open(root / target_name, target_text)
            indexing = await _embedded(client, opened) if mode == DENSE_MODE else None
            lines = target_text.split("\n")
            rng = random.Random(seed)
            version = 1
            stage: dict[str, list[float]] = {"context": [], "rank": [], "context+rank": []}
            asked = 0
            while asked < samples:
                line = rng.randrange(len(lines))
                if not lines[line].strip():
                    continue
                version += 1
                end = len(lines[line].encode("utf-16-le")) // 2
                await client.insert(uri, version, {"line": line, "character": end}, " ")
                lines[line] += " "
                at = {"line": line, "character": end + 1}
                answer = await client.request(
                    "textDocument/inlineCompletion", client.completion_params(uri, at)
                )
                asked += 1
                report = client.report_for(answer, uri)
                timings = (report or {}).get("timingsMs") or {}
                if "rank" in timings:
                    stage["context"].append(timings["context"])
                    stage["rank"].append(timings["rank"])
                    stage["context+rank"].append(timings["context"] + timings["rank"])
            usage = client.usage()
        finally:
            await client.shutdown()
    return {
        "mode": mode,
        "samples": len(stage["rank"]),
        "stages_ms": {
            name: {"p50": _percentile(v, 0.5), "p99": _percentile(v, 0.99)}
            for name, v in stage.items()
            if v
        },
        "peak_rss_mib": usage.peak_rss_mib if usage else None,
        "dense_indexing": indexing,
    }


def run(modes: list[str], samples: int, seed: int, dense: str | None = None) -> dict[str, Any]:
    files = workspace_files()
    if len(files) < FILES + 1:
        raise RuntimeError(f"only {len(files)} standard-library modules have {LINES} lines")
    if dense is not None and DENSE_MODE not in modes:
        modes = [*modes, DENSE_MODE]
    results = [asyncio.run(_measure(mode, files, samples, seed, dense)) for mode in modes]
    return {
        "workspace": {"files": [name for name, _ in files], "lines_each": LINES},
        "results": results,
    }


def markdown(data: dict[str, Any]) -> str:
    rows = [
        "| context | samples | context p50 / p99 ms | rank+pack p50 / p99 ms | "
        "total p50 / p99 ms | server peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for result in data["results"]:
        stages = result["stages_ms"]

        def cell(name: str, stages: dict[str, Any] = stages) -> str:
            found = stages.get(name)
            return f"{found['p50']} / {found['p99']}" if found else "–"

        rows.append(
            f"| {result['mode']} | {result['samples']} | {cell('context')} | {cell('rank')} | "
            f"{cell('context+rank')} | {result['peak_rss_mib']} |"
        )
    for result in data["results"]:
        indexing = result.get("dense_indexing")
        if indexing:
            rows.append(
                f"\n{result['mode']}: {indexing['vectors']} chunks embedded in "
                f"{indexing['seconds']} s after the files were opened ({indexing['status']})"
            )
    return "\n".join(rows) + "\n"
