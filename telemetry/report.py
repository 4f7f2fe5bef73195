"""``ghostcomplete stats``: the figures of ``stats.collect`` as text, JSON or one HTML file.

The HTML report is self-contained (inline CSS, charts as base64 PNG), so it can be mailed or
opened from anywhere; each table and chart names the events it counts.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from typing import Any

from ghostcomplete.telemetry.stats import BACKEND, CACHE, DEFINITIONS, Acceptance, Latency, Stats

# Row labels for where answers came from; "backend <kind>" rows are the backends themselves.
_SOURCE_LABELS = {BACKEND: "waited for the backend", CACHE: "served from a cache"}

_COLUMNS = (
    "requests",
    "offered",
    "shown",
    "noise",
    "typed",
    "accepted",
    "partial",
    "rejected",
    "rate",
    "chars",
)


def _row(acceptance: Acceptance) -> list[str]:
    return [
        str(acceptance.requests),
        str(acceptance.offered),
        str(acceptance.shown),
        str(acceptance.noise),
        str(acceptance.typed_through),
        str(acceptance.accepted),
        str(acceptance.partially_accepted),
        str(acceptance.rejected),
        f"{acceptance.acceptance_rate * 100:.1f} %",
        str(acceptance.accepted_chars),
    ]


def _when(stats: Stats) -> str:
    return datetime.datetime.fromtimestamp(stats.generated_at).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


def _dropped_line(stats: Stats) -> str:
    """How many events the figures are missing, and why."""
    reasons = ", ".join(f"{reason} {n}" for reason, n in stats.dropped_by_reason.items())
    return f"Dropped events (recorded, never stored): {stats.dropped}" + (
        f" ({reasons})" if reasons else ""
    )


def _source(stats: Stats, source: str) -> Latency:
    return stats.latency_by_source.get(source) or Latency.of([])


def _latency_headline(stats: Stats) -> str:
    """What users waited for: answers from a cache take no time and would hide it."""
    waited, cached = _source(stats, BACKEND), _source(stats, CACHE)
    answers = waited.count + cached.count
    if waited.count:
        text = (
            f"{waited.p50:.0f} ms median wait for the backend "
            f"({waited.count} answers, p90 {waited.p90:.0f} ms)"
        )
    else:
        text = "no answers from the backend yet"
    if answers:
        text += f"; {cached.count} of {answers} answers served from a cache" + (
            f" (median {cached.p50:.0f} ms)" if cached.count else ""
        )
    return text


def as_json(stats: Stats) -> str:
    return json.dumps(stats.to_json(), indent=2, sort_keys=False)


def as_text(stats: Stats) -> str:
    lines = [f"ghostcomplete telemetry: {stats.database} ({_when(stats)})"]
    if stats.note:
        return "\n".join([*lines, stats.note, ""])
    labels = [
        *(f"  {key}" for rows in stats.groups.values() for key in rows),
        *_SOURCE_LABELS.values(),
        *stats.latency,
        *(f"backend {name}" for name in stats.latency_by_backend),
    ]
    width = max([12, *(len(label) + 2 for label in labels)])
    header = "".ljust(width) + "".join(column.rjust(10) for column in _COLUMNS)
    total = stats.total
    lines += [
        "",
        f"{total.acceptance_rate * 100:.1f} % accepted "
        f"({total.accepted} of {total.shown - total.noise - total.typed_through} shown), "
        f"{total.accepted_chars} characters accepted",
        _latency_headline(stats),
        _dropped_line(stats),
    ]
    lines += ["", "Acceptance (rate = accepted / (shown - noise - typed through))", header]
    lines.append("all".ljust(width) + "".join(v.rjust(10) for v in _row(stats.total)))
    for name, rows in stats.groups.items():
        lines.append(f"by {name}")
        for key, acceptance in rows.items():
            lines.append(f"  {key}".ljust(width) + "".join(v.rjust(10) for v in _row(acceptance)))
    lines += ["", "Still in code after an accept (edit distance <= 50 % of the accepted text)"]
    for retention in stats.retention:
        share = f"{retention.rate * 100:.1f} %" if retention.checked else "-"
        lines.append(
            f"  {_duration(retention.after_s):>7}  {retention.retained:>6} of "
            f"{retention.checked:<6} {share:>8}"
        )
    lines += ["", "Latency, ms (requests that returned suggestions)"]
    lines.append("".ljust(width) + "".join(c.rjust(10) for c in ("n", "p50", "p90", "p99")))
    sources = {_SOURCE_LABELS[key]: value for key, value in stats.latency_by_source.items()}
    for title, table in (
        ("", sources),
        ("", stats.latency),
        ("backend ", stats.latency_by_backend),
    ):
        for key, latency in table.items():
            cells = (latency.count, latency.p50, latency.p90, latency.p99)
            lines.append(f"{title}{key}".ljust(width) + "".join(str(c).rjust(10) for c in cells))
    lines += ["", "Every figure is a count over the tables of the database: see --json ."]
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------------------
def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _charts(stats: Stats) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts: dict[str, str] = {}
    over_time = stats.groups.get("day", {})
    label = "day"
    if len(over_time) < 2:
        over_time, label = stats.by_hour, "hour"
    if over_time:
        figure, axis = plt.subplots(figsize=(7, 3))
        keys = list(over_time)
        axis.plot(keys, [a.acceptance_rate * 100 for a in over_time.values()], marker="o")
        axis.set_ylabel("acceptance rate, %")
        axis.set_xlabel(label)
        axis.set_ylim(0, 100)
        axis.tick_params(axis="x", rotation=45)
        axis.grid(alpha=0.3)
        charts["Acceptance over time"] = _png(figure)
    waited = stats.latencies_ms.get(BACKEND, [])
    cached = stats.latencies_ms.get(CACHE, [])
    if waited or cached:
        # One panel each: cache hits answer in about no time, and in one histogram they
        # would flatten the answers the user actually waited for.
        figure, (slow, fast) = plt.subplots(
            1, 2, figsize=(8, 3), gridspec_kw={"width_ratios": [3, 1]}
        )
        for axis, values, color, source in (
            (slow, waited, "#4c72b0", BACKEND),
            (fast, cached, "#999999", CACHE),
        ):
            axis.set_title(f"{_SOURCE_LABELS[source]} ({len(values)})", fontsize=9)
            axis.set_xlabel("time to suggestion, ms")
            if values:
                axis.hist(values, bins=40 if source == BACKEND else 10, color=color)
        slow.set_ylabel("requests")
        if waited:
            latency = _source(stats, BACKEND)
            for name, value in (("p50", latency.p50), ("p90", latency.p90)):
                slow.axvline(value, color="#c44e52", linestyle="--", linewidth=1)
                slow.annotate(name, (value, slow.get_ylim()[1] * 0.9), color="#c44e52")
        figure.tight_layout()
        charts["Latency"] = _png(figure)
    checked = [r for r in stats.retention if r.checked]
    if checked:
        figure, axis = plt.subplots(figsize=(7, 3))
        axis.plot([r.after_s / 60 for r in checked], [r.rate * 100 for r in checked], marker="o")
        axis.set_xlabel("minutes after accept")
        axis.set_ylabel("still in code, %")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        charts["Still in code"] = _png(figure)
    return charts


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{padding:.2rem .6rem;text-align:right}
th{border-bottom:1px solid #999}td:first-child,th:first-child{text-align:left}
.big{font-size:2rem;font-weight:600;margin-right:2rem}.muted{color:#777;font-size:.85rem}
img{max-width:100%}dt{font-family:monospace}
"""


def as_html(stats: Stats) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>ghostcomplete telemetry</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>ghostcomplete telemetry</h1>",
        f"<p class='muted'>{html.escape(stats.database)}, {_when(stats)}</p>",
    ]
    if stats.note:
        parts += [f"<p>{html.escape(stats.note)}</p></body></html>"]
        return "".join(parts)
    total = stats.total
    waited = _source(stats, BACKEND)
    parts.append(
        "<p>"
        f"<span class='big'>{total.acceptance_rate * 100:.1f} %</span> accepted "
        f"({total.accepted} of {total.shown - total.noise - total.typed_through} shown) "
        f"<span class='big'>{total.accepted_chars}</span> characters accepted "
        + (
            f"<span class='big'>{waited.p50:.0f} ms</span> median wait for the backend"
            if waited.count
            else ""
        )
        + "</p>"
    )
    parts.append(f"<p>{html.escape(_latency_headline(stats))}</p>")
    parts.append(f"<p>{html.escape(_dropped_line(stats))}</p>")
    for title, image in _charts(stats).items():
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{image}'>")
    parts.append("<h2>Acceptance</h2>")
    rows = [["all", *_row(total)]]
    for name, group in stats.groups.items():
        rows += [[f"{name}: {key}", *_row(value)] for key, value in group.items()]
    parts.append(_table(["", *_COLUMNS], rows))
    parts.append("<h2>Still in code after an accept</h2>")
    parts.append(
        _table(
            ["after", "checked", "retained", "share"],
            [
                [_duration(r.after_s), str(r.checked), str(r.retained), f"{r.rate * 100:.1f} %"]
                for r in stats.retention
            ],
        )
    )
    parts.append("<h2>Latency, ms</h2>")
    latency_rows = (
        [
            [_SOURCE_LABELS[source], str(v.count), str(v.p50), str(v.p90), str(v.p99)]
            for source, v in stats.latency_by_source.items()
        ]
        + [
            [stage, str(v.count), str(v.p50), str(v.p90), str(v.p99)]
            for stage, v in stats.latency.items()
        ]
        + [
            [f"backend {name}", str(v.count), str(v.p50), str(v.p90), str(v.p99)]
            for name, v in stats.latency_by_backend.items()
        ]
    )
    parts.append(_table(["", "n", "p50", "p90", "p99"], latency_rows))
    parts.append("<h2>Where each figure comes from</h2><dl>")
    for name, definition in DEFINITIONS.items():
        parts.append(f"<dt>{html.escape(name)}</dt><dd>{html.escape(definition)}</dd>")
    parts.append("</dl></body></html>")
    return "".join(parts)
