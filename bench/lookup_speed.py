"""What the lookup backend costs on a huge file, in-process.

``python -m ghostcomplete.bench.lookup_speed [--file-kb 950] [--files 20] [--requests 40]``

The current file is the local CPython standard library's top-level modules joined and cut to
``--file-kb`` kilobytes (the server completes files up to ``context.maxFileBytes``, 1 MB by
default); the recent files are the next ``--files`` modules under 60 KB. Cursors are drawn
(seeded) at line starts after the first 100 KB, indented as a body line would be, and each
asks ``LookupBackend.generate`` for 3 candidates in line scope with a 1 s deadline, as the
server does. Prints p50, p90 and the slowest request.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sysconfig
import time
from pathlib import Path

from ghostcomplete.backends import CompletionPrompt, GenerationLimits, LookupBackend
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext

_PACKED_PREFIX_CHARS = 3500  # about what a 2,048-token budget leaves of the prefix
_PACKED_SUFFIX_CHARS = 1400


def workspace(file_kb: int, files: int) -> tuple[str, tuple[str, ...]]:
    """The huge current file and the recent files."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [path.read_text(errors="replace") for path in sorted(stdlib.glob("*.py"))]
    current, used = "", 0
    while used < len(texts) and len(current) < file_kb * 1000:
        current += texts[used]
        used += 1
    recent = tuple(text for text in texts[used:] if len(text) < 60_000)[:files]
    return current[: file_kb * 1000], recent


async def measure(file_kb: int, files: int, requests: int, seed: int = 0) -> list[float]:
    current, recent = workspace(file_kb, files)
    rng = random.Random(seed)
    backend = LookupBackend()
    times: list[float] = []
    start = min(100_000, len(current) // 2)
    for _ in range(requests):
        line = current.find("\n", rng.randint(start, max(start, len(current) - 1000))) + 1
        before, after = current[:line] + "        ", current[line:]
        prompt = CompletionPrompt(
            "python",
            "huge.py",
            PackedContext(before[-_PACKED_PREFIX_CHARS:], after[:_PACKED_SUFFIX_CHARS], (), 0),
            text="",
            reference_texts=recent,
            before_cursor=before,
            after_cursor=after,
        )
        limits = GenerationLimits(Scope.LINE, candidates=3, deadline=time.monotonic() + 1.0)
        began = time.perf_counter()
        await backend.generate(prompt, limits)
        times.append((time.perf_counter() - began) * 1000)
    return sorted(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostcomplete.bench.lookup_speed")
    parser.add_argument("--file-kb", type=int, default=950, help="size of the current file")
    parser.add_argument("--files", type=int, default=20, help="recent files")
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args(argv)
    times = asyncio.run(measure(args.file_kb, args.files, args.requests))
    p50, p90 = times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.9))]
    print(
        f"lookup on a {args.file_kb} KB file with {args.files} recent files, "
        f"{len(times)} requests: p50 {p50:.1f} ms, p90 {p90:.1f} ms, max {times[-1]:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
