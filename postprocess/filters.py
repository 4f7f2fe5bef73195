"""Post-processing of candidates: small named filters applied in a fixed, readable order.

Each filter takes the candidate text and what surrounds the cursor, and returns the text to
keep ("" drops the candidate). Golden cases for each live in tests/golden/filters.toml.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ghostcomplete.context.syntax import Scope

_FIM_ARTIFACTS = re.compile(
    r"<\|?(?:fim_prefix|fim_suffix|fim_middle|fim_pad|endoftext|file_sep|file_separator)\|?>"
    r"|<(?:PRE|SUF|MID|EOT)>|<｜fim▁(?:begin|hole|end)｜>|<｜end▁of▁sentence｜>"
)

_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Surroundings:
    """The text around the cursor that filters judge a candidate against."""

    line_prefix: str
    suffix: str
    scope: Scope
    max_lines: int
    # The whole line above the cursor's line ("" on the first line).
    line_above: str = ""

    @classmethod
    def at(cls, prefix: str, suffix: str, scope: Scope, max_lines: int) -> Surroundings:
        """The surroundings of a cursor that splits a text into ``prefix`` and ``suffix``."""
        lines = prefix.rsplit("\n", 2)
        above = lines[-2] if len(lines) > 1 else ""
        return cls(lines[-1], suffix, scope, max_lines, above.removesuffix("\r"))


Filter = Callable[[str, Surroundings], str]


def strip_model_artifacts(text: str, around: Surroundings) -> str:
    """Cut at the first FIM/end-of-text token and drop markdown code fences."""
    found = _FIM_ARTIFACTS.search(text)
    if found:
        text = text[: found.start()]
    lines = text.split("\n")
    if lines and lines[0].lstrip().startswith("```"):
        lines = lines[1:]
    for index, line in enumerate(lines):
        if line.strip().startswith("```"):
            lines = lines[:index]
            break
    return "\n".join(lines)


def keep_the_typed_indentation(text: str, around: Surroundings) -> str:
    """On a line that holds only indentation, the suggestion starts where the cursor is. A
    model that writes more whitespace first would re-indent a line the user (or the editor)
    already indented, and the suggestion would not be what the user types from there. The
    extra whitespace goes from the first line, and from the following lines that carry it
    too, so that a block indented too far as a whole keeps its shape. An empty line prefix
    (column 0) is left alone: there the model's indentation is all there is."""
    prefix = around.line_prefix
    if not prefix or prefix.strip():
        return text
    first, newline, rest = text.partition("\n")
    extra = first[: len(first) - len(first.lstrip(" \t"))]
    if not extra or not first.strip():
        return text
    lines = [first[len(extra) :]]
    if newline:
        deeper = prefix + extra
        for line in rest.split("\n"):
            lines.append(prefix + line[len(deeper) :] if line.startswith(deeper) else line)
    return "\n".join(lines)


def scope_text(text: str, scope: Scope, line_prefix: str) -> str:
    """What of ``text``, typed after ``line_prefix``, a suggestion in ``scope`` may hold: one
    line in line scope (the next line if the cursor ends its line); a block ends where the
    indentation drops below the cursor's."""
    if scope is Scope.LINE:
        if text.startswith("\n") and line_prefix.strip():
            end = text.find("\n", 1)
            return text if end < 0 else text[:end]
        return text.split("\n", 1)[0]
    indent = len(line_prefix) - len(line_prefix.lstrip())
    lines = text.split("\n")
    kept = lines[:1]
    for line in lines[1:]:
        stripped = line.lstrip()
        if stripped and len(line) - len(stripped) < indent:
            break
        kept.append(line)
    return "\n".join(kept)


def cut_to_scope(text: str, around: Surroundings) -> str:
    """``scope_text`` for the cursor's surroundings (``max_lines`` is the next filter's)."""
    return scope_text(text, around.scope, around.line_prefix)


def respect_max_lines(text: str, around: Surroundings) -> str:
    """At most ``max_lines`` lines (a leading line break that starts the next line is free)."""
    lead = "\n" if text.startswith("\n") else ""
    return lead + "\n".join(text[len(lead) :].split("\n")[: max(1, around.max_lines)])


def trim_trailing_whitespace(text: str, around: Surroundings) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


def drop_suffix_repeat(text: str, around: Surroundings) -> str:
    """Drop a candidate that only repeats what already follows the cursor."""
    following = around.suffix.lstrip()
    candidate = text.strip()
    if not candidate:
        return text
    if following.startswith(candidate):
        return ""
    next_line = around.suffix.split("\n", 2)
    if len(next_line) > 1 and candidate == next_line[1].strip():
        return ""
    return text


def drop_copy_of_line_above(text: str, around: Surroundings) -> str:
    """Drop a candidate whose first line, once written, is the line just above it again (at
    any indentation): repeating the previous statement, or a header inside its own body, is
    almost never what the user wants next. Lines of brackets and punctuation only may
    repeat."""
    line_suffix = around.suffix.split("\n", 1)[0].removesuffix("\r")
    if text.startswith("\n") and around.line_prefix.strip():
        # The candidate starts the next line: the cursor's own line is the one above it.
        written = text[1:].split("\n", 1)[0]
        above = around.line_prefix + line_suffix
    else:
        first = text.split("\n", 1)[0]
        written = around.line_prefix + first + (line_suffix if "\n" not in text else "")
        above = around.line_above
    if not _WORD.search(above) or written.strip() != above.strip():
        return text
    return ""


def balance_closers_with_suffix(text: str, around: Surroundings) -> str:
    """When the rest of the line already closes brackets the candidate also closes, keep only
    one: drop the candidate's trailing closers that the line suffix supplies."""
    line_suffix = around.suffix.split("\n", 1)[0].strip()
    if not line_suffix or "\n" in text:
        return text
    if text.rstrip().endswith(line_suffix):
        return text.rstrip()[: -len(line_suffix)]
    return text


def drop_trivial(text: str, around: Surroundings) -> str:
    """Whitespace-only candidates are noise."""
    return text if text.strip() else ""


PIPELINE: tuple[Filter, ...] = (
    strip_model_artifacts,
    keep_the_typed_indentation,
    cut_to_scope,
    respect_max_lines,
    trim_trailing_whitespace,
    balance_closers_with_suffix,
    drop_suffix_repeat,
    drop_copy_of_line_above,
    drop_trivial,
)


def apply_filters(
    texts: Sequence[str], around: Surroundings, pipeline: Sequence[Filter] = PIPELINE
) -> list[str]:
    """Run every filter over every candidate; drop emptied and duplicate candidates."""
    return [text for text, _ in filtered(texts, around, pipeline)]


def filtered(
    texts: Sequence[str], around: Surroundings, pipeline: Sequence[Filter] = PIPELINE
) -> list[tuple[str, int]]:
    """``apply_filters``, each kept text with the index of the candidate it came from: a
    filter may change a text, so the text alone cannot say who wrote it."""
    kept: list[tuple[str, int]] = []
    seen: set[str] = set()
    for index, text in enumerate(texts):
        for step in pipeline:
            text = step(text, around)
            if not text:
                break
        if text and text not in seen:
            seen.add(text)
            kept.append((text, index))
    return kept
