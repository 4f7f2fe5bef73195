"""The acceptance benchmark: cut holes in real files, ask the running server, score.

For every task the editor state is rebuilt from scratch: the task's neighbour files are
opened farthest first (so that the nearest is the most recently used), then the target file
with its hole, then one ``textDocument/inlineCompletion`` is sent at the cursor and every
document is closed again. Each project gets its own server process per context setting,
rooted at the project's folder, as a person working on it would have.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ghostcomplete.bench.corpus import Repo
from ghostcomplete.bench.lsp_client import LspClient, utf16_position
from ghostcomplete.bench.metrics import Score, coverage, mean, percentile, score
from ghostcomplete.bench.progress import Progress
from ghostcomplete.bench.tasks import KINDS, Task

CONTEXTS = ("none", "copilot", "default")
_REQUEST_TIMEOUT_S = 30.0
_SETTLE_TIMEOUT_S = 300.0


def server_options(context: str, backend: str) -> dict[str, Any]:
    """initializationOptions for one ablation. ``none`` also sets recentFiles to 0, since a
    backend may read the open files directly (the lookup engine does)."""
    options: dict[str, Any] = {"debug": {"reportTimings": True}, "backend": {"kind": backend}}
    if context == "none":
        options["context"] = {"snippets": "none", "recentFiles": 0}
    elif context == "copilot":
        options["context"] = {"snippets": "copilot"}
    return options


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, section by section (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class TaskResult(Score):
    """One task's outcome: its score (bench/metrics.py) and what it was scored on."""

    task_id: str
    repo: str
    kind: str
    context: str
    suggestion: str
    target: str
    # Who wrote the suggestion ("lookup:prefix", "onnx", ...; "" when none was shown): a
    # hybrid's answers split by it.
    origin: str
    skipped: str | None
    latency_ms: float
    timings_ms: dict[str, float]
    coverage_in_file: float | None
    coverage_reachable: float | None
    coverage_prompt: float | None
    # A model's answer before its cut: {"text", "ends", "chances"} per generated token
    # (backends.base.TokenTrace); None for the lookup.
    trace: dict[str, Any] | None
    # The prompt the server rendered for a model backend (its FIM format, snippets and all),
    # to read what the model was given; None for the lookup.
    prompt: str | None
    # What the backend said of its first suggestion (didComplete.backendDetails), e.g. the
    # lookup's calibrated "confidence": what a study of the hybrid's choice replays.
    details: dict[str, float] = field(default_factory=dict)


def request_timeout_s(settings: dict[str, Any]) -> float:
    """How long the bench waits for one answer: past the server's own deadline, so that a
    slow model (``completion.timeoutMs`` set high to measure quality) is not cut by it."""
    timeout_ms = (settings.get("completion") or {}).get("timeoutMs")
    if isinstance(timeout_ms, int | float):
        return max(_REQUEST_TIMEOUT_S, timeout_ms / 1000 + _REQUEST_TIMEOUT_S)
    return _REQUEST_TIMEOUT_S


async def run_task(
    client: LspClient,
    repo: Repo,
    task: Task,
    context: str,
    recent_files: int,
    timeout_s: float = _REQUEST_TIMEOUT_S,
) -> TaskResult:
    uris: list[str] = []
    neighbour_texts = []
    for path in reversed(task.neighbours):
        text = repo.text(path)
        neighbour_texts.append(text)
        uris.append(await client.open(repo.root / path, text))
    document = task.prefix + task.suffix
    uri = await client.open(repo.root / task.path, document)
    uris.append(uri)
    try:
        # A round trip first, so that the latency below is not the time the server spends
        # on the didOpen notifications queued before the request.
        await _settled(client)
        at = utf16_position(document, len(task.prefix))
        # Invoked: the server's final suggestion here, which a hybrid that shows the lookup's
        # at once while typing (backend.hybrid.whileWaiting) puts on screen after it.
        answer = await client.request(
            "textDocument/inlineCompletion",
            client.completion_params(uri, at, invoked=True),
            timeout=timeout_s,
        )
        report = client.report_for(answer, uri) or {}
    finally:
        for opened in uris:
            await client.close(opened)
    items = (answer.result or {}).get("items", []) if isinstance(answer.result, dict) else []
    insert = items[0].get("insertText", "") if items else ""
    # A StringValue (snippet) carries its text in "value".
    suggestion = str(insert.get("value", "") if isinstance(insert, dict) else insert)
    scored = score(suggestion, task.target)
    in_file = task.prefix + task.suffix
    reachable = in_file
    if context != "none":
        reachable += "\n".join(neighbour_texts[-recent_files:] if recent_files else [])
    prompt = report.get("prompt")
    origins = report.get("origins") or []
    client.did_complete.clear()
    return TaskResult(
        task_id=task.task_id,
        repo=task.repo,
        kind=task.kind,
        context=context,
        suggestion=suggestion,
        target=task.target,
        origin=str(origins[0]) if origins and suggestion else "",
        skipped=report.get("skipped"),
        latency_ms=round(answer.latency_ms, 3),
        timings_ms=dict(report.get("timingsMs") or {}),
        coverage_in_file=coverage(task.target, in_file),
        coverage_reachable=coverage(task.target, reachable),
        coverage_prompt=coverage(task.target, prompt) if isinstance(prompt, str) else None,
        trace=report.get("trace") if isinstance(report.get("trace"), dict) else None,
        prompt=prompt if isinstance(prompt, str) and report.get("trace") else None,
        details=_numbers(report.get("backendDetails")),
        **asdict(scored),
    )


def _numbers(details: Any) -> dict[str, float]:
    """The numeric entries of a report's backendDetails ({} when it has none)."""
    if not isinstance(details, dict):
        return {}
    return {
        str(key): float(value)
        for key, value in details.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


async def chosen_backend(client: LspClient) -> str:
    """What the server's backend resolved to, in words (``auto``'s choice)."""
    status = await client.status()
    return str(status.get("chosen") or status.get("backend") or "")


async def _settled(client: LspClient) -> None:
    """Wait until the server has taken in the files just opened: one round trip, and with
    dense retrieval on, until their chunks are embedded (the steady state of an editor whose
    files have been open a while; `bench context` times the embedding itself)."""
    started = time.monotonic()
    while True:
        status = await client.status()
        pending = (status.get("dense") or {}).get("pending", 0)
        if not pending or time.monotonic() - started > _SETTLE_TIMEOUT_S:
            return
        await asyncio.sleep(0.02)


def summarize(results: list[TaskResult]) -> dict[str, Any]:
    """The headline numbers of a list of task results (see README: how to read them)."""
    latencies = [r.latency_ms for r in results]
    target_chars = sum(r.target_chars for r in results)
    prompt = [r.coverage_prompt for r in results if r.coverage_prompt is not None]
    shown = sum(r.shown for r in results)
    return {
        "tasks": len(results),
        "shown_rate": mean(float(r.shown) for r in results),
        "exact_match": mean(float(r.exact) for r in results),
        "edit_similarity": mean(r.edit_similarity for r in results),
        "identifier_f1": mean(r.identifier_f1 for r in results),
        "accept_rate": mean(float(r.accepted) for r in results),
        # Issue 5's targets: the share of shown suggestions taken whole, and the characters
        # taken whole per cursor.
        "accepted_of_shown": (sum(r.accepted for r in results) / shown) if shown else None,
        "accepted_chars": mean(float(r.chars_saved if r.accepted else 0) for r in results),
        "partial_accept_rate": mean(float(r.partial_chars >= 4) for r in results),
        "chars_saved_share": (sum(r.chars_saved for r in results) / target_chars)
        if target_chars
        else None,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "coverage_in_file": mean(
            r.coverage_in_file for r in results if r.coverage_in_file is not None
        ),
        "coverage_reachable": mean(
            r.coverage_reachable for r in results if r.coverage_reachable is not None
        ),
        "coverage_prompt": mean(prompt) if prompt else None,
        "skipped": dict(Counter(r.skipped for r in results if r.skipped).most_common(5)),
    }


async def run_project(
    repo: Repo,
    tasks: list[Task],
    context: str,
    options: dict[str, Any],
    progress: Progress,
) -> tuple[list[TaskResult], dict[str, Any]]:
    """One project's tasks through a fresh server whose workspace is that project's folder,
    as an editor opened on the project starts one: the prompt names the repository and its
    files relative to it, and imports resolve inside it."""
    recent_files = 0 if context == "none" else 20
    results: list[TaskResult] = []
    client = await LspClient.start(repo.root, options)
    try:
        chosen = await chosen_backend(client)
        for task in tasks:
            results.append(
                await run_task(
                    client, repo, task, context, recent_files, request_timeout_s(options)
                )
            )
            progress.advance(note=f"{context} {task.repo}")
        usage = client.usage()
    finally:
        await client.shutdown()
    server: dict[str, Any] = {"project": repo.label, "chosen": chosen}
    server.update(asdict(usage) if usage else {})
    return results, server


def combined_usage(servers: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's server figures from its per-project servers: CPU time summed, the largest
    peak memory, and each server's own figures under ``projects``."""
    cpu = [s["cpu_s"] for s in servers if isinstance(s.get("cpu_s"), int | float)]
    rss = [s["peak_rss_mib"] for s in servers if isinstance(s.get("peak_rss_mib"), int | float)]
    chosen = list(dict.fromkeys(str(s.get("chosen") or "") for s in servers))
    out: dict[str, Any] = {}
    if cpu:
        out["cpu_s"] = round(sum(cpu), 2)
    if rss:
        out["peak_rss_mib"] = max(rss)
    out["chosen"] = ", ".join(c for c in chosen if c)
    out["projects"] = servers
    return out


async def run_context(
    repos: list[Repo],
    tasks: list[Task],
    context: str,
    backend: str,
    progress: Progress,
    settings: dict[str, Any],
) -> tuple[list[TaskResult], dict[str, Any]]:
    """Run every task under one context setting: a fresh server per project (run_project),
    the results in the order of ``tasks``."""
    by_label = {repo.label: repo for repo in repos}
    options = merged(server_options(context, backend), settings)
    groups: dict[str, list[int]] = {}
    for index, task in enumerate(tasks):
        groups.setdefault(task.repo, []).append(index)
    ordered: dict[int, TaskResult] = {}
    servers: list[dict[str, Any]] = []
    for label, indexes in groups.items():
        results, server = await run_project(
            by_label[label], [tasks[i] for i in indexes], context, options, progress
        )
        ordered.update(zip(indexes, results, strict=True))
        servers.append(server)
    return [ordered[i] for i in range(len(tasks))], combined_usage(servers)


def run(
    repos: list[Repo],
    tasks: list[Task],
    contexts: list[str],
    backend: str,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every context setting over every task; results grouped for the report."""
    progress = Progress(len(tasks) * len(contexts), "acceptance")
    runs = []
    rows: list[dict[str, Any]] = []
    for context in contexts:
        results, server = asyncio.run(
            run_context(repos, tasks, context, backend, progress, settings or {})
        )
        by_kind = {
            kind: summarize([r for r in results if r.kind == kind])
            for kind in KINDS
            if any(r.kind == kind for r in results)
        }
        by_repo = {
            repo.label: summarize([r for r in results if r.repo == repo.label])
            for repo in repos
            if any(r.repo == repo.label for r in results)
        }
        # The shown suggestions by who wrote them (a hybrid: the lookup or the model).
        by_origin = {
            origin: summarize([r for r in results if r.origin == origin])
            for origin in sorted({r.origin for r in results if r.origin})
        }
        runs.append(
            {
                "context": context,
                "backend": backend,
                "chosen": server.get("chosen", ""),
                "overall": summarize(results),
                "by_origin": by_origin,
                "by_kind": by_kind,
                "by_repo": by_repo,
                "server": server,
            }
        )
        rows += [asdict(r) for r in results]
    return {"runs": runs, "tasks": rows}
