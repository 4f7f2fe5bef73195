"""The chat prompt of an edit request: the instruction, the selection, the code around it and
the most relevant snippets of other files, as OpenAI-style chat messages.

Pure: no I/O and no LSP. server/edit.py gathers the parts; edit/answer.py reads the
model's answer.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ghostcomplete.context.display_paths import display_path
from ghostcomplete.ranker.redaction import Vault, redact_part, redact_snippet, restore
from ghostcomplete.ranker.snippets import Snippet

SELECTION_OPEN = "<selection>"
SELECTION_CLOSE = "</selection>"

SYSTEM = (
    "You are a careful programmer who rewrites code exactly as instructed. You are shown a "
    "file with a selection marked by <selection> and </selection>, and code from other files "
    "for reference. Answer with the rewritten selection only, in a single fenced code block, "
    "and nothing else: no explanation, no code from outside the selection, no selection "
    "markers. Keep the selection's indentation and the file's style. If the instruction "
    "cannot be applied, answer with the selection unchanged."
)


@dataclass(frozen=True)
class EditContext:
    """What the model is shown for one edit request."""

    instruction: str
    language_id: str
    path: str
    # The lines of the file before the selection (as many as the settings allow), the
    # selection, and the lines after it.
    before: str
    selection: str
    after: str
    # The most relevant pieces of other files, best first.
    snippets: Sequence[Snippet] = ()
    # How the snippets' files are named (by URI), workspace-relative where possible.
    paths: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # When secrets were hidden: placeholder -> the text it stands for (see ``redacted``).
    secrets: Mapping[str, str] = dataclasses.field(default_factory=dict)


def surroundings(text: str, start: int, end: int, lines: int) -> tuple[str, str]:
    """The text before ``start`` from ``lines`` lines above its line, and the text after
    ``end`` to the end of ``lines`` lines below its line."""
    begin = text.rfind("\n", 0, start) + 1
    for _ in range(lines):
        if begin == 0:
            break
        begin = text.rfind("\n", 0, begin - 1) + 1
    finish = end
    for _ in range(lines + 1):
        found = text.find("\n", finish)
        if found < 0:
            finish = len(text)
            break
        finish = found + 1
    return text[begin:start], text[end:finish]


def redacted(
    context: EditContext, document: str, start: int, sources: Mapping[str, str]
) -> EditContext:
    """``context`` with its secrets hidden: the selection, the code around it and the
    snippets, each redacted with the secrets of its whole source (``document`` is the text
    the selection starts at ``start`` in; ``sources`` the texts of the snippets' files by URI).

    Each distinct secret gets its own placeholder, kept in ``secrets``, so that
    ``restore_secrets`` can put the secrets back where the model's answer kept them.
    """
    vault = Vault(avoid=document + "".join(s.text for s in context.snippets))
    before_start = start - len(context.before)
    end = start + len(context.selection)
    after_end = end + len(context.after)
    return dataclasses.replace(
        context,
        before=redact_part(document, before_start, start, vault)[0],
        selection=redact_part(document, start, end, vault)[0],
        after=redact_part(document, end, after_end, vault)[0],
        snippets=tuple(redact_snippet(s, sources, vault) for s in context.snippets),
        secrets=vault.secrets,
    )


def restore_secrets(text: str, context: EditContext) -> str:
    """``text`` (the model's answer) with the placeholders of ``context`` put back."""
    return restore(text, context.secrets)


def fence_for(*texts: str) -> str:
    """A backtick fence longer than any run of backticks in ``texts`` (at least three)."""
    longest = max((len(run) for text in texts for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _block(fence: str, language: str, text: str) -> str:
    return f"{fence}{language}\n{text}{'' if text.endswith(chr(10)) else chr(10)}{fence}\n"


def render_edit_messages(context: EditContext) -> list[dict[str, str]]:
    """System and user messages for an OpenAI-compatible chat completion."""
    language = context.language_id
    texts = [context.before, context.selection, context.after]
    texts += [snippet.text for snippet in context.snippets]
    fence = fence_for(*texts)
    parts = [f"File: {context.path} ({language})\n"]
    if context.snippets:
        parts.append("\nCode from other files of the project, for reference (do not edit):\n")
        for snippet in context.snippets:
            named = context.paths.get(snippet.uri) or display_path(snippet.uri)
            where = f"{named}, line {snippet.start_line + 1}"
            parts.append(f"\n{where}:\n" + _block(fence, language, snippet.text))
    marked = context.before + SELECTION_OPEN + context.selection + SELECTION_CLOSE + context.after
    parts.append("\nThe file around the selection:\n" + _block(fence, language, marked))
    parts.append("\nThe selection:\n" + _block(fence, language, context.selection))
    parts.append(f"\nInstruction: {context.instruction.strip()}\n")
    parts.append(
        f"\nAnswer with the rewritten selection in one {fence}{language} block and nothing else."
    )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "".join(parts)},
    ]
