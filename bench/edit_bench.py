"""``ghostcomplete bench edit``: edit requests on pinned third-party code, through the real
server, checked mechanically.

One server serves the run. For each task the client opens the file, sends
``workspace/executeCommand ghostcomplete.edit {uri, range, instruction}`` as an editor does,
takes the ``workspace/applyEdit`` the server sends, applies it to its copy of the file and runs
the task's checks (bench/edit_checks.py). Latency is from sending the command to its answer,
at the editor's end of the pipe.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ghostcomplete.bench.acceptance import merged
from ghostcomplete.bench.edit_checks import EditResult, first_failure
from ghostcomplete.bench.edit_tasks import KINDS, EditTask, TaskFileError, select
from ghostcomplete.bench.lsp_client import STATUS_COMMAND, LspClient, utf16_position
from ghostcomplete.bench.metrics import percentile
from ghostcomplete.bench.progress import Progress
from ghostcomplete.context.positions import offset_at

EDIT_COMMAND = "ghostcomplete.edit"
DEFAULT_TIMEOUT_S = 120.0
# Answers that mean no edit can succeed with these settings: the run stops with the message.
_UNUSABLE = (
    "need a model that follows instructions",
    "the backend is not working",
    "cannot answer chat completions",  # serve-model without an instruct model
)
# ... and these, when the very first task gets them (later, they may be one slow answer).
_UNUSABLE_FIRST = ("cannot reach the model server", "has no such endpoint")


class CannotEdit(Exception):
    """The server cannot run edit requests with these settings; the message says why."""


@dataclass(frozen=True)
class EditTaskResult:
    task_id: str
    project: str
    split: str
    kind: str
    success: bool
    applied: bool
    failed_check: str | None  # "applied" when the server changed nothing
    why: str
    message: str  # the server's answer to the command
    latency_ms: float
    edited: str | None  # the selection after the edit


def _text_edits(params: list[dict[str, Any]], uri: str) -> list[dict[str, Any]]:
    """The TextEdits for ``uri`` in workspace/applyEdit params (both WorkspaceEdit shapes)."""
    found: list[dict[str, Any]] = []
    for param in params:
        edit = param.get("edit") or {}
        for change in edit.get("documentChanges") or []:
            if (change.get("textDocument") or {}).get("uri") == uri:
                found += change.get("edits") or []
        found += (edit.get("changes") or {}).get(uri) or []
    return found


def apply_text_edits(text: str, edits: list[dict[str, Any]]) -> str:
    """``text`` with LSP TextEdits (UTF-16 positions) applied, as an editor applies them."""
    located = []
    for edit in edits:
        start, end = edit["range"]["start"], edit["range"]["end"]
        first = offset_at(text, start["line"], start["character"])
        last = offset_at(text, end["line"], end["character"])
        if first is None or last is None or first > last:
            raise ValueError(f"edit range {edit['range']} is not in the document")
        located.append((first, last, str(edit["newText"])))
    for first, last, new_text in sorted(located, key=lambda item: item[:2], reverse=True):
        text = text[:first] + new_text + text[last:]
    return text


def _result(task: EditTask, **fields: Any) -> EditTaskResult:
    return EditTaskResult(
        task_id=task.task_id, project=task.project, split=task.split, kind=task.kind, **fields
    )


async def run_task(
    client: LspClient, root: Path, task: EditTask, timeout_s: float, first: bool
) -> EditTaskResult:
    text = (root / task.path).read_text(encoding="utf-8").replace("\r\n", "\n")
    start, end = select(task, text)
    uri = await client.open(root / task.path, text)
    try:
        await client.request("workspace/executeCommand", {"command": STATUS_COMMAND})
        client.applied_edits.clear()
        arguments = {
            "uri": uri,
            "range": {"start": utf16_position(text, start), "end": utf16_position(text, end)},
            "instruction": task.instruction,
        }
        answer = await client.request(
            "workspace/executeCommand",
            {"command": EDIT_COMMAND, "arguments": [arguments]},
            timeout=timeout_s + 30,
        )
    finally:
        await client.close(uri)
    latency = round(answer.latency_ms, 1)
    outcome = answer.result if isinstance(answer.result, dict) else {}
    message = str(outcome.get("message") or (answer.error or {}).get("message") or "")
    if any(marker in message for marker in _UNUSABLE) or (
        first and any(marker in message for marker in _UNUSABLE_FIRST)
    ):
        raise CannotEdit(message)
    if not outcome.get("applied"):
        return _result(
            task,
            success=False,
            applied=False,
            failed_check="applied",
            why=message or "no answer",
            message=message,
            latency_ms=latency,
            edited=None,
        )
    try:
        after = apply_text_edits(text, _text_edits(client.applied_edits, uri))
    except (KeyError, TypeError, ValueError) as error:
        after, problem = text, f"the workspace edit cannot be applied: {error}"
    else:
        problem = ""
    edited = EditResult(task.language, text, after, start, end)
    failure = first_failure(edited, list(task.checks))
    if problem:
        failure_check, why = "applied", problem
    elif failure is not None:
        failure_check, why = failure.check, failure.why
    else:
        failure_check, why = None, ""
    return _result(
        task,
        success=failure_check is None,
        applied=True,
        failed_check=failure_check,
        why=why,
        message=message,
        latency_ms=latency,
        edited=edited.edited_selection,
    )


def summarize(results: list[EditTaskResult]) -> dict[str, Any]:
    latencies = [r.latency_ms for r in results]
    count = len(results)
    return {
        "tasks": count,
        "success": sum(r.success for r in results),
        "success_rate": sum(r.success for r in results) / count if count else None,
        "applied_rate": sum(r.applied for r in results) / count if count else None,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "failed_checks": dict(Counter(r.failed_check for r in results if r.failed_check)),
    }


async def _run(
    tasks: list[EditTask], roots: dict[str, Path], options: dict[str, Any], timeout_s: float
) -> tuple[list[EditTaskResult], dict[str, Any]]:
    progress = Progress(len(tasks), "edit")
    folders = sorted({roots[task.project] for task in tasks})
    client = await LspClient.start(folders[0], options, folders)
    results: list[EditTaskResult] = []
    try:
        for index, task in enumerate(tasks):
            results.append(
                await run_task(client, roots[task.project], task, timeout_s, first=index == 0)
            )
            progress.advance(note=task.task_id)
        usage = client.usage()
    finally:
        await client.shutdown()
    return results, asdict(usage) if usage else {}


def server_options(settings: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """initializationOptions: the run's settings, with the edit deadline of ``--timeout``."""
    return merged(settings, {"edit": {"timeoutMs": int(timeout_s * 1000)}})


def run(
    tasks: list[EditTask],
    roots: dict[str, Path],
    settings: dict[str, Any],
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """Every task through one server; CannotEdit when the settings cannot edit at all."""
    if not tasks:
        raise TaskFileError("no task selected")
    results, server = asyncio.run(
        _run(tasks, roots, server_options(settings, timeout_s), timeout_s)
    )
    return {
        "overall": summarize(results),
        "by_kind": {
            kind: summarize([r for r in results if r.kind == kind])
            for kind in KINDS
            if any(r.kind == kind for r in results)
        },
        "by_split": {
            split: summarize([r for r in results if r.split == split])
            for split in ("dev", "test")
            if any(r.split == split for r in results)
        },
        "server": server,
        "results": [asdict(r) for r in results],
    }


def _cell(value: Any, percent: bool = False, seconds: bool = False) -> str:
    if value is None:
        return "–"
    if percent:
        return f"{value * 100:.1f}"
    if seconds:
        return f"{value / 1000:.1f}"
    return str(value)


def markdown(data: dict[str, Any]) -> str:
    heads = ["", "tasks", "success", "success %", "applied %", "p50 s", "p95 s", "failed at"]
    lines = [
        f"# bench edit ({data.get('split', 'all')} split)",
        "",
        f"`{data.get('command', '')}`",
        "",
        "| " + " | ".join(heads) + " |",
        "|" + "---|" * len(heads),
    ]
    rows = [("all", data["overall"])]
    rows += list(data["by_kind"].items()) + list(data["by_split"].items())
    for label, summary in rows:
        failed = ", ".join(f"{k} {v}" for k, v in sorted(summary["failed_checks"].items()))
        cells = [
            label,
            str(summary["tasks"]),
            str(summary["success"]),
            _cell(summary["success_rate"], percent=True),
            _cell(summary["applied_rate"], percent=True),
            _cell(summary["latency_p50_ms"], seconds=True),
            _cell(summary["latency_p95_ms"], seconds=True),
            failed or "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| task | kind | result | latency s |", "|---|---|---|---|"]
    for result in data["results"]:
        verdict = "ok" if result["success"] else f"{result['failed_check']}: {result['why']}"
        verdict = verdict.replace("|", "\\|").replace("\n", " ")[:140]
        lines.append(
            f"| {result['task_id']} | {result['kind']} | {verdict} | "
            f"{result['latency_ms'] / 1000:.1f} |"
        )
    return "\n".join(lines) + "\n"


def interleaved(tasks: list[EditTask], limit: int | None) -> list[EditTask]:
    """The first ``limit`` tasks taken in turn from each kind, so that a short run has every
    kind; file order within a kind."""
    queues = {kind: [t for t in tasks if t.kind == kind] for kind in KINDS}
    ordered: list[EditTask] = []
    while any(queues.values()):
        for kind in KINDS:
            if queues[kind]:
                ordered.append(queues[kind].pop(0))
    return ordered[:limit] if limit is not None else ordered
