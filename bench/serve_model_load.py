"""Load for a model server: N simulated editors asking for completions back to back through
our http backend, reporting throughput, latency and the HTTP overhead (client latency minus
the generation time the server reports in Server-Timing).

    python -m ghostcomplete.bench.serve_model_load --url http://127.0.0.1:8000 --editors 8

Prompts are holes cut at random lines of the source files under ``--files`` (default: this
package), so that answers are of realistic size. The HTTP overhead is measured with
``--no-stream`` only: a streamed answer's headers leave before its generation time is known,
so it carries no Server-Timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    overheads_ms: list[float] = field(default_factory=list)
    answered: int = 0
    empty: int = 0
    failed: int = 0


def holes(root: Path, count: int, seed: int) -> list[CompletionPrompt]:
    """``count`` prompts cut at random lines of the Python files under ``root``."""
    chooser = random.Random(seed)
    texts = [p.read_text(errors="replace") for p in sorted(root.rglob("*.py"))]
    texts = [text for text in texts if text.count("\n") > 20]
    prompts = []
    for _ in range(count):
        text = chooser.choice(texts)
        lines = text.split("\n")
        line = chooser.randrange(10, len(lines) - 1)
        column = chooser.randrange(0, max(1, len(lines[line])))
        prefix = "\n".join([*lines[:line], lines[line][:column]])[-4000:]
        suffix = "\n".join([lines[line][column:], *lines[line + 1 :]])[:1000]
        context = PackedContext(prefix, suffix, (), 0)
        prompts.append(
            CompletionPrompt(
                "python",
                "hole.py",
                context,
                render_fim(context, "starcoder", "python", "hole.py"),
                TEMPLATES["starcoder"].stop,
            )
        )
    return prompts


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share / 100 * (len(ordered) - 1)))]


async def editor(
    settings: HttpSettings, prompts: list[CompletionPrompt], until: float, tally: Tally
) -> None:
    backend = HttpBackend(settings)
    try:
        index = 0
        while time.monotonic() < until:
            prompt = prompts[index % len(prompts)]
            index += 1
            limits = GenerationLimits(Scope.LINE, 400, 1, 1, time.monotonic() + 5)
            started = time.monotonic()
            try:
                candidates = await backend.generate(prompt, limits)
            except Exception:  # a load test counts failures, it does not stop on them
                tally.failed += 1
                continue
            elapsed = (time.monotonic() - started) * 1000
            tally.latencies_ms.append(elapsed)
            tally.answered += 1
            if not candidates:
                tally.empty += 1
                continue
            server_ms = candidates[0].details.get("server_ms")
            if server_ms is not None:
                tally.overheads_ms.append(elapsed - server_ms)
    finally:
        await backend.aclose()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = HttpSettings(api=args.api, url=args.url, stream=args.stream)
    prompts = holes(Path(args.files), 200, args.seed)
    tally = Tally()
    started = time.monotonic()
    until = started + args.seconds
    await asyncio.gather(*(editor(settings, prompts, until, tally) for _ in range(args.editors)))
    wall = time.monotonic() - started
    return {
        "editors": args.editors,
        "api": args.api,
        "stream": args.stream,
        "seconds": round(wall, 2),
        "completions": tally.answered,
        "empty": tally.empty,
        "failed": tally.failed,
        "per_second": round(tally.answered / wall, 1),
        "latency_ms": {
            "p50": round(percentile(tally.latencies_ms, 50), 3),
            "p95": round(percentile(tally.latencies_ms, 95), 3),
            "p99": round(percentile(tally.latencies_ms, 99), 3),
        },
        # Streamed answers carry no Server-Timing: the overhead needs --no-stream.
        "http_overhead_ms": {
            "p50": round(percentile(tally.overheads_ms, 50), 3),
            "p95": round(percentile(tally.overheads_ms, 95), 3),
            "mean": round(statistics.fmean(tally.overheads_ms), 3) if tally.overheads_ms else None,
        }
        if tally.overheads_ms
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api", default="openai", choices=["openai", "llamacpp"])
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-stream", dest="stream", action="store_false")
    parser.add_argument("--files", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--seed", type=int, default=1)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
