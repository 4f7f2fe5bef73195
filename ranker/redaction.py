"""Redaction of secrets from text that leaves the machine (remote backends only).

Secrets are found in each source text whole (the document, each neighbouring file) before any
part of it is cut out for a prompt: the budget may trim a key's ``BEGIN`` line or split a
snippet through a key, and the part that is sent is still redacted with the spans of the
whole. A secret that a cut splits is replaced on both sides; no part of it is sent.

Completions replace every secret with ``<redacted>``. Edit requests use a ``Vault``: each
distinct secret gets its own placeholder (``<redacted-1>``), so that the secrets can be put
back into the model's answer where it kept the placeholders.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from ghostcomplete.ranker.secret_rules import Span, find_secrets
from ghostcomplete.ranker.snippets import Snippet

REDACTED = "<redacted>"


class Vault:
    """Reversible redaction: one placeholder per distinct secret, and back."""

    def __init__(self, avoid: str = "") -> None:
        # Placeholders never collide with text that is already there (``avoid``).
        self._avoid = avoid
        self._by_secret: dict[str, str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._last = 0

    def placeholder(self, secret: str) -> str:
        known = self._by_secret.get(secret)
        if known is not None:
            return known
        self._last += 1
        while (candidate := f"<redacted-{self._last}>") in self._avoid:
            self._last += 1
        self._by_secret[secret] = candidate
        self._by_placeholder[candidate] = secret
        return candidate

    @property
    def secrets(self) -> Mapping[str, str]:
        """Placeholder -> the text it stands for."""
        return dict(self._by_placeholder)


def restore(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with the placeholders of ``secrets`` replaced by what they stand for."""
    if not secrets:
        return text
    pattern = re.compile("|".join(re.escape(p) for p in sorted(secrets, key=len, reverse=True)))
    return pattern.sub(lambda match: secrets[match.group(0)], text)


@functools.lru_cache(maxsize=32)
def _secrets_of(text: str) -> tuple[Span, ...]:
    # Keyed on the text itself: a neighbour that did not change is hashed once (str caches
    # its hash) and scanned once, however many keystrokes ask.
    return tuple(find_secrets(text))


def redact_part(
    text: str, start: int = 0, end: int | None = None, vault: Vault | None = None
) -> tuple[str, int]:
    """``text[start:end]`` with every secret of the whole ``text`` that it touches replaced
    (a secret cut by ``start`` or ``end`` too), and how many were replaced."""
    end = len(text) if end is None else end
    pieces: list[str] = []
    at = start
    count = 0
    for span in _secrets_of(text):
        if span.end <= start or span.start >= end:
            continue
        left, right = max(span.start, start), min(span.end, end)
        pieces.append(text[at:left])
        secret = text[left:right]
        pieces.append(vault.placeholder(secret) if vault is not None else REDACTED)
        at = right
        count += 1
    pieces.append(text[at:end])
    return "".join(pieces), count


def redact(text: str) -> tuple[str, int]:
    """``text`` with secrets replaced by <redacted>, and how many were replaced."""
    return redact_part(text)


def _line_offset(text: str, line: int) -> int | None:
    offset = 0
    for _ in range(line):
        found = text.find("\n", offset)
        if found < 0:
            return None
        offset = found + 1
    return offset


def redact_snippet(
    snippet: Snippet, sources: Mapping[str, str], vault: Vault | None = None
) -> Snippet:
    """``snippet`` redacted with the secrets of the whole file it was cut from, when that file
    is in ``sources`` (by URI) and the snippet is its text verbatim; else by its own text."""
    source = sources.get(snippet.uri)
    if source is not None:
        offset = _line_offset(source, snippet.start_line)
        if offset is not None and source.startswith(snippet.text, offset):
            text, _ = redact_part(source, offset, offset + len(snippet.text), vault)
            return _with_text(snippet, text)
    text, _ = redact_part(snippet.text, vault=vault)
    return _with_text(snippet, text)


def _with_text(snippet: Snippet, text: str) -> Snippet:
    if text == snippet.text:
        return snippet
    return Snippet(snippet.uri, snippet.start_line, text, snippet.score, snippet.kind)


def redact_around_cursor(
    text: str,
    offset: int,
    snippets: Sequence[Snippet],
    sources: Mapping[str, str],
    vault: Vault | None = None,
) -> tuple[str, str, list[Snippet]]:
    """The prefix (``text[:offset]``) and suffix of a document and the snippets, each
    redacted with the secrets of its whole source before anything trims them."""
    prefix, _ = redact_part(text, 0, offset, vault)
    suffix, _ = redact_part(text, offset, len(text), vault)
    return prefix, suffix, [redact_snippet(snippet, sources, vault) for snippet in snippets]
