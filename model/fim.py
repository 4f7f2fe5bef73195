"""Training examples in the shape of the prompts the server sends (ranker/prompt.py).

Half are fill-in-the-middle in StarCoder's PSM order, the hole being the rest of a line or a
few lines, so the model learns the single-line and block completions it is asked for; half are
plain left-to-right text. Both start with ``# Path: ...`` and sometimes with a snippet of
another file of the same package rendered as comments, exactly as the server renders them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from ghostcomplete.model.corpus import SourceFile

PREFIX, SUFFIX, MIDDLE = "<fim_prefix>", "<fim_suffix>", "<fim_middle>"
END, FILE_SEP = "<|endoftext|>", "<file_sep>"
SPECIAL = [END, PREFIX, MIDDLE, SUFFIX, FILE_SEP]

PREFIX_CHARS = 1200
SUFFIX_CHARS = 300
SNIPPET_LINES = 12


def snippet(source: SourceFile, rng: random.Random) -> str:
    """A window of ``source`` rendered as ranker/prompt.py render_snippets renders one."""
    lines = source.text.split("\n")
    start = rng.randrange(max(1, len(lines) - SNIPPET_LINES))
    body = lines[start : start + SNIPPET_LINES]
    text = "\n".join(f"# {line}" if line else "#" for line in body)
    return f"# Compare this snippet from {source.path}:\n{text}\n"


def hole(text: str, rng: random.Random) -> tuple[int, int]:
    """Where the middle starts and ends: the rest of a line (often mid-word), or 1-8 lines."""
    lines_at = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    line = rng.randrange(len(lines_at))
    begin = lines_at[line]
    end_of_line = text.find("\n", begin)
    end_of_line = len(text) if end_of_line < 0 else end_of_line
    if rng.random() < 0.6:
        indent = len(text[begin:end_of_line]) - len(text[begin:end_of_line].lstrip())
        start = rng.randint(begin + indent, max(begin + indent, end_of_line))
        return start, end_of_line
    last = min(len(lines_at) - 1, line + rng.randint(1, 8))
    stop = lines_at[last] - 1 if last > line else len(text)
    start = begin + rng.randint(0, max(0, end_of_line - begin))
    return start, max(start, stop)


def example(source: SourceFile, others: list[SourceFile], rng: random.Random) -> str:
    head = f"# Path: {source.path}\n"
    if others and rng.random() < 0.3:
        head += snippet(rng.choice(others), rng)
    text = source.text
    if rng.random() < 0.5:
        start = rng.randrange(max(1, len(text) - PREFIX_CHARS))
        return head + text[start : start + PREFIX_CHARS * 2] + END
    start, stop = hole(text, rng)
    prefix = text[max(0, start - PREFIX_CHARS) : start]
    suffix = text[stop : stop + SUFFIX_CHARS]
    return f"{PREFIX}{head}{prefix}{SUFFIX}{suffix}{MIDDLE}{text[start:stop]}{END}"


def examples(sources: list[SourceFile], count: int, seed: int) -> Iterator[str]:
    """``count`` examples: a package drawn in proportion to the square root of its size (so
    that one big package does not dominate), then a file in proportion to its length."""
    rng = random.Random(seed)
    by_package: dict[str, list[SourceFile]] = {}
    for source in sources:
        by_package.setdefault(source.package, []).append(source)
    names = sorted(by_package)
    package_weights = [sum(len(s.text) for s in by_package[n]) ** 0.5 for n in names]
    file_weights = {n: [min(len(s.text), 20_000) for s in by_package[n]] for n in names}
    for _ in range(count):
        name = rng.choices(names, package_weights)[0]
        source = rng.choices(by_package[name], file_weights[name])[0]
        yield example(source, by_package[name], rng)
