"""The latency benchmark: replay a person typing real code, as VS Code talks to the server.

For each drawn file, a stretch of whole lines (``chars`` long) is cut out and typed back in
at a human rate with pauses. Every keystroke sends an incremental ``didChange`` and a new
``textDocument/inlineCompletion`` (cancelling the previous one with ``$/cancelRequest`` if it
is still open). When the suggestion on screen is what the person is about to type, they take
it: the text is inserted in one change and ``ghostcomplete.accept`` is executed. A newline
brings the next line's indentation with it, as editors auto-indent. When the server says a
better suggestion is ready (``ghostcomplete/didFindBetter``) for the text as it stands, the
client asks again, as the editors do.

Keystrokes never wait for the server; answers are timed at the client's end of the pipe.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ghostcomplete.bench.acceptance import merged, server_options
from ghostcomplete.bench.corpus import Repo
from ghostcomplete.bench.imports import import_graph, nearest_files
from ghostcomplete.bench.lsp_client import ACCEPT_COMMAND, Answer, LspClient, utf16_position
from ghostcomplete.bench.metrics import percentile
from ghostcomplete.bench.model_server import ModelServer
from ghostcomplete.bench.progress import Progress

_REQUEST_CANCELLED = -32800
_MEDIAN_KEY_S = 0.14  # about 85 words a minute
_MIN_FILE_CHARS = 400


@dataclass
class Stretch:
    repo: Repo
    path: str
    before: str
    typed: str
    after: str
    neighbours: list[str]


@dataclass
class Tally:
    keystrokes: int = 0
    requests: int = 0
    answered_ms: list[float] = field(default_factory=list)
    with_items: int = 0
    cancelled: int = 0
    superseded: int = 0
    accepted: int = 0
    accepted_chars: int = 0
    typed_chars: int = 0
    accepts: list[dict[str, Any]] = field(default_factory=list)
    # Keys typed while a suggestion that starts with them was shown, and how many of those
    # the server answered from memory.
    type_through: int = 0
    type_through_cached: int = 0
    # Requests sent again on ghostcomplete/didFindBetter.
    asked_again: int = 0
    # One entry per answered request: what the key was and what the answer held, so that the
    # summary can say where a percentile comes from.
    answers: list[dict[str, Any]] = field(default_factory=list)
    # What the server's status said: the deadline in force and what the backend resolved to
    # (older servers say neither).
    deadline_ms: float | None = None
    # The prompt budget the server had in force when the last file was opened.
    prompt_tokens: int | None = None
    chosen: str = ""


def draw_stretches(repos: list[Repo], files: int, chars: int, seed: int) -> list[Stretch]:
    """``files`` stretches of about ``chars`` characters of whole lines, seeded."""
    rng = random.Random(f"{seed}:latency")
    pool = [
        (repo, path)
        for repo in repos
        for path in repo.files
        if (repo.root / path).stat().st_size >= max(_MIN_FILE_CHARS, chars * 2)
    ]
    chosen = rng.sample(pool, min(files, len(pool)))
    graphs: dict[str, Any] = {}
    stretches = []
    for repo, path in chosen:
        if repo.label not in graphs:
            graphs[repo.label] = import_graph(repo, {p: repo.text(p) for p in repo.files})
        text = repo.text(path)
        starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        eligible = [s for s in starts if s > 200 and s + chars < len(text)]
        start = rng.choice(eligible) if eligible else 0
        end = text.find("\n", start + chars)
        end = len(text) if end < 0 else end
        neighbours = nearest_files(repo, graphs[repo.label], path)
        stretches.append(Stretch(repo, path, text[:start], text[start:end], text[end:], neighbours))
    return stretches


def keystrokes(typed: str) -> list[str]:
    """What each key press inserts: one character, or a newline with the next indentation."""
    keys: list[str] = []
    index = 0
    while index < len(typed):
        if typed[index] == "\n":
            end = index + 1
            while end < len(typed) and typed[end] in " \t":
                end += 1
            keys.append(typed[index:end])
            index = end
        else:
            keys.append(typed[index])
            index += 1
    return keys


def pause_after(key: str, rng: random.Random) -> float:
    """Seconds before the next key press: lognormal typing with thinking pauses."""
    delay = rng.lognormvariate(0, 0.35) * _MEDIAN_KEY_S
    if key.startswith("\n") and rng.random() < 0.3:
        delay += rng.uniform(0.8, 2.5)
    elif key in " (),.:" and rng.random() < 0.05:
        delay += rng.uniform(0.4, 1.2)
    return delay


def _suggestion(answer: Answer | None) -> tuple[str, str] | None:
    if answer is None or answer.error or not isinstance(answer.result, dict):
        return None
    items = answer.result.get("items") or []
    if not items:
        return None
    text = items[0].get("insertText", "")
    text = text.get("value", "") if isinstance(text, dict) else str(text)
    arguments = (items[0].get("command") or {}).get("arguments") or [""]
    return text, str(arguments[0])


async def type_stretch(
    client: LspClient, stretch: Stretch, seed: int, tally: Tally, progress: Progress
) -> None:
    rng = random.Random(f"{seed}:{stretch.repo.label}:{stretch.path}")
    opened = []
    for path in reversed(stretch.neighbours):
        opened.append(await client.open(stretch.repo.root / path, stretch.repo.text(path)))
    document = stretch.before + stretch.after
    uri = await client.open(stretch.repo.root / stretch.path, document)
    opened.append(uri)
    status = await client.status()
    if isinstance(status.get("timeoutMs"), int | float):
        tally.deadline_ms = float(status["timeoutMs"])
    tally.chosen = str(status.get("chosen") or tally.chosen)
    if isinstance(status.get("promptTokens"), int):
        tally.prompt_tokens = int(status["promptTokens"])
    loop = asyncio.get_running_loop()
    version, done, offset = 1, 0, len(stretch.before)
    open_request: tuple[int, asyncio.Future[Answer]] | None = None
    answers: list[asyncio.Future[Answer]] = []
    sent_keys: list[str] = []  # what each request followed: "char", "newline" or "accept"
    typed_through: set[int] = set()  # indexes into answers
    keys = keystrokes(stretch.typed)
    due = loop.time()
    index = 0
    while index < len(keys):
        while (better := await _found_better(client, due - loop.time())) is not None:
            if better.get("uri") != uri or better.get("version") != version:
                continue  # a stale one: the text changed since
            open_request = client.send_request(
                "textDocument/inlineCompletion",
                client.completion_params(uri, utf16_position(document, offset), invoked=True),
            )
            tally.requests += 1
            tally.asked_again += 1
            answers.append(open_request[1])
            sent_keys.append("again")
        latest = open_request[1].result() if open_request and open_request[1].done() else None
        remaining = stretch.typed[done:]
        shown = _suggestion(latest)
        if shown and shown[0] and remaining.startswith(shown[0]):
            insert, item_id = shown[0], shown[1]
            tally.accepted += 1
            tally.accepted_chars += len(insert)
            writer = written_by(client.did_complete, uri, insert)
            tally.accepts.append(
                {"file": stretch.path, "at": done, "text": insert, "written by": writer}
            )
            client.send_request(
                "workspace/executeCommand", {"command": ACCEPT_COMMAND, "arguments": [item_id]}
            )
            # Skip the key presses the accepted text covers (a key may end inside it).
            covered = done + len(insert)
            while index < len(keys) and done + len(keys[index]) <= covered:
                done += len(keys[index])
                index += 1
            extra = covered - done
            if extra > 0:  # part of a newline+indent key: type its rest later
                keys[index] = keys[index][extra:]
                done = covered
            key_kind = "accept"
        else:
            insert = keys[index]
            key_kind = "newline" if insert.startswith("\n") else "char"
            done += len(insert)
            index += 1
            tally.typed_chars += len(insert)
            if shown and len(shown[0]) > len(insert) and shown[0].startswith(insert):
                typed_through.add(len(answers))
        tally.keystrokes += 1
        version += 1
        await client.insert(uri, version, utf16_position(document, offset), insert)
        document = document[:offset] + insert + document[offset:]
        offset += len(insert)
        if open_request is not None and not open_request[1].done():
            await client.cancel(open_request[0])
        open_request = client.send_request(
            "textDocument/inlineCompletion",
            client.completion_params(uri, utf16_position(document, offset)),
        )
        tally.requests += 1
        answers.append(open_request[1])
        sent_keys.append(key_kind)
        due += pause_after(insert, rng)
        progress.advance(note=stretch.path)
    await asyncio.wait(answers, timeout=10)
    for position, future in enumerate(answers):
        if not future.done():
            continue
        answer = future.result()
        if position in typed_through:
            tally.type_through += 1
            report = client.report_for(answer, uri) if not answer.error else None
            if report is not None and report.get("cache") in ("typing", "inflight", "prompt"):
                tally.type_through_cached += 1
        if answer.error:
            tally.cancelled += answer.error.get("code") == _REQUEST_CANCELLED
            continue
        tally.answered_ms.append(answer.latency_ms)
        suggestion = _suggestion(answer)
        report = client.report_for(answer, uri)
        if suggestion:
            tally.with_items += 1
        elif report is None:
            tally.superseded += 1
        details = (report or {}).get("backendDetails") or {}
        tally.answers.append(
            {
                "ms": round(answer.latency_ms, 3),
                "first": position == 0,
                "key": sent_keys[position],
                "suggestion lines": len(suggestion[0].split("\n")) if suggestion else 0,
                "cache": (report or {}).get("cache"),
                "early": bool((report or {}).get("early")),
                "skipped": (report or {}).get("skipped"),
                "prompt tokens": details.get("prompt_tokens"),
                "reused tokens": details.get("reused_tokens"),
            }
        )
    for closing in opened:
        await client.close(closing)


async def _found_better(client: LspClient, wait_s: float) -> dict[str, Any] | None:
    """The next ghostcomplete/didFindBetter within ``wait_s`` seconds, else None."""
    if wait_s <= 0:
        return None
    try:
        return await asyncio.wait_for(client.found_better.get(), wait_s)
    except TimeoutError:
        return None


def writer_of(origin: object) -> str:
    """Who a candidate's origin names: "lookup:prefix" → "lookup", "onnx" → "onnx"."""
    return str(origin).split(":", 1)[0]


def written_by(reports: list[dict[str, Any]], uri: str, text: str) -> str:
    """Who wrote a suggestion ("lookup", "onnx", "http"; "" when unknown): the writer of
    the latest item for ``uri`` that ends in ``text`` (a cache's answer is the rest of an
    earlier item, and names the same writer)."""
    for report in reversed(reports):
        if report.get("uri") != uri:
            continue
        items, origins = report.get("items") or [], report.get("origins") or []
        for item, origin in zip(items, origins, strict=False):
            if isinstance(item, str) and item.endswith(text):
                return writer_of(origin)
    return ""


def by_writer(writers: list[str]) -> str:
    """``lookup 40, onnx 12, unknown 3``: a count per writer, most first."""
    counted = Counter(writer or "unknown" for writer in writers)
    return ", ".join(f"{writer} {count}" for writer, count in counted.most_common()) or "none"


def spread(values: list[float]) -> dict[str, Any]:
    """The percentiles every latency row shows, and how many values they come from."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "n": len(values),
    }


def _stage_percentiles(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    stages: dict[str, list[float]] = {}
    for report in reports:
        for stage, ms in (report.get("timingsMs") or {}).items():
            stages.setdefault(stage, []).append(float(ms))
    return {f"server {stage}": spread(values) for stage, values in stages.items()}


def kv_reuse(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The share of each model call's prompt that the engine's KV cache already held, as the
    backend reported it (``reused_tokens / prompt_tokens``; backends that keep no cache
    report neither, and answers from the server's caches are not model calls)."""
    shares = [
        100 * float(d["reused_tokens"]) / float(d["prompt_tokens"])
        for r in reports
        if not r.get("cache")
        for d in [r.get("backendDetails") or {}]
        if float(d.get("prompt_tokens") or 0) > 0 and "reused_tokens" in d
    ]
    if not shares:
        return {}
    return {
        "prompt reused from the KV cache, mean %": round(sum(shares) / len(shares), 1),
        "… p10 / p50 %": f"{percentile(shares, 10):.1f} / {percentile(shares, 50):.1f}",
        "… model calls with a candidate": len(shares),
    }


def http_settings(url: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Where the server's http backend finds the loopback model server. The http backend's
    settings are not final: ``{model_url}`` in ``--settings`` is replaced with the URL."""
    text = json.dumps(extra).replace("{model_url}", url)
    guessed = {"backend": {"http": {"url": url}}} if "{model_url}" not in json.dumps(extra) else {}
    return merged(guessed, json.loads(text))


async def _run(
    stretches: list[Stretch],
    seed: int,
    backend: str,
    progress: Progress,
    settings: dict[str, Any],
    http_delay_ms: int | None,
) -> dict[str, Any]:
    tally = Tally()
    model = None
    if backend == "http":
        model = await ModelServer(http_delay_ms or 0).start()
        settings = http_settings(model.url, settings)
    options = merged(server_options("default", backend), settings)
    # One server for the whole replay (its latency is the figure, and a server per project
    # would add a cold start per project to it), with every project's folder a workspace
    # folder: files are named relative to their project and imports resolve inside it.
    folders = list(dict.fromkeys(stretch.repo.root for stretch in stretches))
    client = await LspClient.start(folders[0], options, folders)
    try:
        for stretch in stretches:
            await type_stretch(client, stretch, seed, tally, progress)
        usage = client.usage()
    finally:
        await client.shutdown()
        if model is not None:
            await model.close()
    reports = client.did_complete
    # Newer servers count backend calls themselves (prefetches included) and name the cache
    # that answered; older ones only show a backend stage in the timings.
    counted = [r["backendCalls"] for r in reports if isinstance(r.get("backendCalls"), int)]
    model_calls = (
        max(counted)
        if counted
        else sum(1 for r in reports if "backend" in (r.get("timingsMs") or {}))
    )
    caches = Counter(str(r.get("cache")) for r in reports if r.get("cache") or r.get("cacheHit"))
    prefetches = max((r.get("prefetches") or 0 for r in reports), default=0)
    answered = tally.answered_ms
    latency = {
        "keystroke → answer": spread(answered),
        **_stage_percentiles(reports),
    }
    timed = [r for r in reports if "total" in (r.get("timingsMs") or {})]
    overhead = [_overhead_ms(r) for r in timed]
    latency["server overhead (total − backend − debounce)"] = spread(overhead)
    # A server that does not say its deadline had completion.timeoutMs's old default, 1000.
    deadline_ms = tally.deadline_ms or float(
        (settings.get("completion") or {}).get("timeoutMs") or 1000
    )
    keystrokes = max(1, tally.keystrokes)
    counts = {
        "backend chosen": tally.chosen or "–",
        "prompt tokens in force (last file)": tally.prompt_tokens or "–",
        "files typed": len(stretches),
        "keystrokes (incl. accepts)": tally.keystrokes,
        "requests": tally.requests,
        "answers given early (the lookup's while the model wrote)": sum(
            1 for a in tally.answers if a.get("early")
        ),
        "… sent again on didFindBetter": tally.asked_again,
        "answers with a suggestion": tally.with_items,
        "cancelled by the client": tally.cancelled,
        "superseded (empty, no report)": tally.superseded,
        "model calls per keystroke": round(model_calls / keystrokes, 3),
        "cache hits": sum(caches.values()),
        **{f"cache hits: {kind}": count for kind, count in sorted(caches.items())},
        "prefetches": prefetches,
        "model server requests": model.requests if model else None,
        "suggestions accepted": tally.accepted,
        "chars accepted % of chars entered": round(
            100 * tally.accepted_chars / max(1, tally.accepted_chars + tally.typed_chars), 1
        ),
        "server CPU s": usage.cpu_s if usage else None,
        "server CPU ms per keystroke": round(1000 * usage.cpu_s / keystrokes, 2) if usage else None,
        "server peak RSS MiB": usage.peak_rss_mib if usage else None,
        "keys typed through a shown suggestion": tally.type_through,
        "… answered from the cache %": round(
            100 * tally.type_through_cached / max(1, tally.type_through), 1
        ),
        f"answers later than the {deadline_ms:.0f} ms deadline": sum(
            1 for ms in answered if ms > deadline_ms
        ),
        **kv_reuse(reports),
    }
    latency.update(answer_breakdown(tally.answers))
    at_deadline = Counter(a["key"] for a in tally.answers if a["skipped"] == "deadline passed")
    counts["answers at the deadline, by the key before them"] = (
        ", ".join(f"{key} {count}" for key, count in sorted(at_deadline.items())) or "none"
    )
    with_items = [r for r in reports if r.get("items")]
    for label, group in (
        ("suggestions shown, by writer", with_items),
        ("… from a backend call (not a cache)", [r for r in with_items if not r.get("cache")]),
    ):
        counts[label] = by_writer([writer_of((r.get("origins") or [""])[0]) for r in group])
    counts["suggestions accepted, by writer"] = by_writer(
        [a.get("written by", "") for a in tally.accepts]
    )
    hybrid = [r["hybridCounts"] for r in reports if isinstance(r.get("hybridCounts"), dict)]
    if hybrid:  # running counts: the latest report has them all
        latest = max(hybrid, key=lambda counted: sum(counted.values()))
        keys = ("lookup_first", "model", "fallback", "lookup_likelier")
        counts["hybrid calls: lookup sure / model / fell back / lookup likelier"] = " / ".join(
            str(latest.get(key, 0)) for key in keys
        )
    # The requests with the most overhead, stage by stage: where a p99 comes from.
    slowest = sorted(timed, key=_overhead_ms, reverse=True)[:10]
    return {
        "summary": {"latency_ms": latency, "counts": counts},
        "samples_ms": answered,
        "answers": tally.answers,
        "accepts": tally.accepts,
        "most_overhead": [
            {"overhead_ms": round(_overhead_ms(r), 3), "cache": r.get("cache"), **r["timingsMs"]}
            for r in slowest
        ],
    }


def answer_breakdown(answers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The answer latencies split as a typing target is stated: the first request after a
    file is opened (it fills the model's cache from nothing), the requests after it, and the
    answers that carried a one-line suggestion."""
    return {
        "keystroke → answer, first request after opening a file": spread(
            [a["ms"] for a in answers if a["first"]]
        ),
        "keystroke → answer, later requests": spread([a["ms"] for a in answers if not a["first"]]),
        "keystroke → one-line suggestion, later requests": spread(
            [a["ms"] for a in answers if not a["first"] and a["suggestion lines"] == 1]
        ),
    }


def _overhead_ms(report: dict[str, Any]) -> float:
    """A request's time in the server that is neither the model's nor the debounce wait."""
    timings = report["timingsMs"]
    spent = float(timings["total"])
    return spent - float(timings.get("backend", 0.0)) - float(timings.get("debounce", 0.0))


def run(
    repos: list[Repo],
    files: int,
    chars: int,
    seed: int,
    backend: str,
    http_delay_ms: int | None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    stretches = draw_stretches(repos, files, chars, seed)
    if not stretches:
        raise ValueError("no file is long enough to type from")
    total = sum(len(keystrokes(s.typed)) for s in stretches)
    progress = Progress(total, "latency")
    result = asyncio.run(_run(stretches, seed, backend, progress, settings or {}, http_delay_ms))
    progress.advance(progress.total)
    result["backend"] = backend if http_delay_ms is None else f"{backend}+{http_delay_ms}ms"
    result["files"] = [f"{s.repo.label}:{s.path}" for s in stretches]
    return {"runs": [result]}
