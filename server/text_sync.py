"""Incremental document sync by LSP's rules, where pygls' own TextDocument breaks them.

pygls 2.1 splits lines with ``str.splitlines`` (which also breaks at form feed, U+0085,
U+2028 and other characters that are not line breaks for LSP) and moves a character past the
end of the last line one character back. Either way its copy of the document silently drifts
from the editor's. Here: lines end at LF, CRLF or CR only; a character past the end of its
line means the end of the line (before its line break); a line past the end of the document
means the end of the document; a position inside a multi-unit character means the end of that
character; a range whose end comes before its start is read the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

from ghostcomplete.context.positions import unit_width

_LINE_BREAK = re.compile("\r\n|\r|\n")


def _line_start(text: str, line: int) -> int | None:
    """Index where ``line`` starts, or None when the document has fewer lines."""
    if line <= 0:
        return 0
    if "\r" not in text:  # the common case, at C speed per line
        start = -1
        for _ in range(line):
            start = text.find("\n", start + 1)
            if start < 0:
                return None
        return start + 1
    position = 0
    for _ in range(line):
        found = _LINE_BREAK.search(text, position)
        if found is None:
            return None
        position = found.end()
    return position


def _content_end(text: str, start: int) -> int:
    """Index of the line break that ends the line starting at ``start`` (or the text's end)."""
    found = _LINE_BREAK.search(text, start)
    return found.start() if found is not None else len(text)


def offset_of(text: str, position: types.Position, encoding: str = "utf-16") -> int:
    """The string index of an LSP position, by the rules in this module's docstring."""
    start = _line_start(text, position.line)
    if start is None:
        return len(text)
    end = _content_end(text, start)
    wanted = max(position.character, 0)
    segment = text[start:end]
    if segment.isascii() or encoding == "utf-32":
        return start + min(wanted, len(segment))
    width = unit_width(encoding)
    units = 0
    index = start
    while index < end and units < wanted:
        units += width(text[index])
        index += 1
    return index


def apply_change(text: str, change_range: types.Range, new_text: str, encoding: str) -> str:
    start = offset_of(text, change_range.start, encoding)
    end = offset_of(text, change_range.end, encoding)
    if end < start:
        start, end = end, start
    return text[:start] + new_text + text[end:]


class LspTextDocument(TextDocument):
    """A pygls document that applies incremental changes by LSP's line rules."""

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        encoding = str(getattr(self.position_codec.encoding, "value", self.position_codec.encoding))
        self._source = apply_change(self.source, change.range, change.text, encoding)

    @property
    def lines(self) -> Sequence[str]:
        return tuple(_split_keeping_breaks(self.source))


def _split_keeping_breaks(text: str) -> list[str]:
    lines = []
    position = 0
    for found in _LINE_BREAK.finditer(text):
        lines.append(text[position : found.end()])
        position = found.end()
    if position < len(text):
        lines.append(text[position:])
    return lines


class LspWorkspace(Workspace):
    """A pygls workspace whose documents are LspTextDocuments."""

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LspTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )


def use_lsp_line_rules(workspace: Workspace) -> None:
    """Make the workspace pygls built at initialize create LspTextDocuments from now on.

    pygls builds its Workspace inside its own initialize handler and offers no factory hook;
    LspWorkspace adds no state, so switching the class of that instance is safe. Call it
    before any document is opened (in the initialize handler).
    """
    if type(workspace) is Workspace:
        workspace.__class__ = LspWorkspace
