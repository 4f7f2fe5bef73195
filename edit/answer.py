"""Reading a model's answer to an edit request, and making the smallest edit out of it.

Three pure steps, in the order server/edit.py applies them:

1. ``extract_code``: the code in the answer (the longest fenced block; without fences, the
   answer minus a leading sentence of commentary). An answer cut off inside a block is refused:
   applying it would apply half an edit.
2. ``fit_to_selection``: the code re-indented to where the selection sits (models often
   dedent), with the selection's line endings and its leading/trailing line breaks.
3. ``minimal_change``: the replacement with the common start and end of old and new trimmed.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from ghostcomplete.context.positions import unit_width
from ghostcomplete.edit.prompt import SELECTION_CLOSE, SELECTION_OPEN

_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
# A sentence that introduces the code ("Here is the updated code:", "Sure! ...").
_PREAMBLE = re.compile(
    r"^\s*(here('s| is| are)|sure|certainly|of course|okay|ok\b|below|i('ve| have)|"
    r"the (updated|rewritten|modified|refactored|revised|new|edited) )",
    re.IGNORECASE,
)


class AnswerProblem(Exception):
    """The answer cannot be applied; the message says why (shown to the user)."""


@dataclass(frozen=True)
class Change:
    """Replace ``text[start:end]`` with ``replacement`` (string offsets)."""

    start: int
    end: int
    replacement: str


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _fenced_blocks(lines: list[str]) -> list[str]:
    """The bodies of the fenced blocks; AnswerProblem when the last one never closes."""
    blocks: list[str] = []
    index = 0
    while index < len(lines):
        opening = _OPENING.match(lines[index])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        index += 1
        while index < len(lines) and not _closes(lines[index], fence):
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        if index >= len(lines):
            raise AnswerProblem(
                "the model's answer stops inside its code block (cut off); nothing was "
                "applied: select less or raise edit.maxTokens"
            )
        blocks.append("\n".join(body))
        index += 1
    return blocks


def extract_code(answer: str) -> str:
    """The code in a chat answer: markdown fences and commentary removed."""
    answer = answer.replace("\r\n", "\n")
    lines = answer.split("\n")
    blocks = _fenced_blocks(lines)
    if blocks:
        code = max(blocks, key=len)  # the code, not a one-line example in the commentary
    else:
        while lines and (not lines[0].strip() or _PREAMBLE.match(lines[0])):
            lines.pop(0)
        code = "\n".join(lines)
    stripped = code.strip()
    if stripped.startswith(SELECTION_OPEN) and stripped.endswith(SELECTION_CLOSE):
        code = code.replace(SELECTION_OPEN, "", 1)
        close = code.rfind(SELECTION_CLOSE)
        code = code[:close] + code[close + len(SELECTION_CLOSE) :]
    if not code.strip():
        raise AnswerProblem("the model answered with no code; nothing was applied")
    return code


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _common_indent(lines: list[str]) -> str:
    indents = [_indent_of(line) for line in lines if line.strip()]
    if not indents:
        return ""
    common = indents[0]
    for indent in indents[1:]:
        while not indent.startswith(common):
            common = common[:-1]
    return common


def _rebase(lines: list[str], target: str) -> list[str]:
    """``lines`` with their common indentation replaced by ``target``; blank lines emptied."""
    current = _common_indent(lines)
    return [target + line[len(current) :] if line.strip() else "" for line in lines]


def _tabs_for_spaces(lines: list[str]) -> list[str]:
    """Leading spaces as tabs, one tab per indentation step (the smallest indentation used)."""
    widths = [len(line) - len(line.lstrip(" ")) for line in lines if line.strip()]
    step = min((width for width in widths if width), default=0)
    if not step:
        return lines
    out = []
    for line in lines:
        width = len(line) - len(line.lstrip(" "))
        out.append("\t" * (width // step) + " " * (width % step) + line[width:])
    return out


def _spaces_for_tabs(lines: list[str], like: list[str]) -> list[str]:
    """Leading tabs as spaces, one indentation step of ``like`` (else 4) per tab."""
    widths = sorted({len(_indent_of(line)) for line in like if line.strip()})
    steps = [b - a for a, b in itertools.pairwise(widths)]
    step = min(steps) if steps else 4
    out = []
    for line in lines:
        indent = _indent_of(line)
        out.append(indent.replace("\t", " " * step) + line[len(indent) :])
    return out


def _indents_with_tabs(lines: list[str]) -> bool:
    indents = [_indent_of(line) for line in lines if line.strip()]
    return any("\t" in indent for indent in indents) and not any(" " in i for i in indents)


def fit_to_selection(code: str, selection: str, line_head: str) -> str:
    """``code`` placed where ``selection`` is: re-indented, line breaks as the selection's.

    ``line_head`` is the text of the selection's first line before the selection (the start of
    the line up to the selection's start)."""
    newline = "\r\n" if "\r\n" in selection else "\n"
    selection = selection.replace("\r\n", "\n")
    lines = code.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    selected = selection.split("\n")
    whole_lines = [line_head + selected[0], *selected[1:]]
    if _indents_with_tabs(whole_lines):
        lines = _tabs_for_spaces(lines)  # the model answered in spaces; the file uses tabs
    elif any(_indent_of(line).strip(" ") == "" and _indent_of(line) for line in whole_lines):
        lines = _spaces_for_tabs(lines, whole_lines)  # and the other way round
    if not line_head.strip():
        # The selection starts in the indentation: re-indent all of it, then drop the part of
        # the first line that stays in front of the selection.
        target = _common_indent([line_head + selected[0], *selected[1:]])
        lines = _rebase(lines, target)
        if lines[0].startswith(line_head):
            lines[0] = lines[0][len(line_head) :]
        else:
            lines[0] = lines[0].lstrip(" \t")
    else:
        # The selection starts after code on its line: the first line continues that code.
        rest_target = _common_indent(selected[1:]) if len(selected) > 1 else _indent_of(line_head)
        lines = [lines[0].lstrip(" \t"), *_rebase(lines[1:], rest_target)]
    text = "\n".join(lines)
    leading = len(selection) - len(selection.lstrip("\n"))
    if selection.strip() and leading:
        text = "\n" * leading + text
    if selection.endswith("\n"):
        trailing = len(selection) - len(selection.rstrip("\n"))
        text += "\n" * trailing
    return text.replace("\n", newline) if newline != "\n" else text


def minimal_change(old: str, new: str) -> Change | None:
    """The smallest single replacement turning ``old`` into ``new`` (None: no change). Never
    splits a CRLF line break."""
    if old == new:
        return None
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    if start and old[start - 1] == "\r":
        start -= 1
    tail = 0
    while tail < limit - start and old[len(old) - 1 - tail] == new[len(new) - 1 - tail]:
        tail += 1
    end = len(old) - tail
    if tail and old[end] == "\n" and end - 1 >= start and old[end - 1] == "\r":
        tail -= 1
    return Change(start, len(old) - tail, new[start : len(new) - tail])


def position_of(text: str, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
    """The LSP (line, character) of a string offset, characters counted in ``encoding``."""
    width = unit_width(encoding)
    line = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    return line, sum(width(ch) for ch in text[line_start:offset])
