"""Token healing: end the prompt before the prefix's last token and make the answer begin with
that token's text, so that the model picks the token it would have used there.

A prefix that ends in the middle of what the model sees as one token leaves the prompt in a
state the model rarely met in training. ``x = new `` ends in a lone space token where the
model's tokens carry their leading space (`` SemVer``), so it writes ``new SemVer`` again;
``self.ma`` ends in ``.ma`` where it would have written ``.max``. Healing backs off that
last token (its text: the "removed" text), and constrains the first generated token(s): each
must either begin with what is left of the removed text, or be a non-empty proper prefix of
it (then the next token goes on with the rest). The removed text is then dropped from the
answer, which the editor already shows.

Only the prefix's last token is backed off, and only where that is sound: an ordinary token
(no special token), whole UTF-8 characters, no line break, at most ``MAX_HEALED_CHARS``
characters, and the text the prefix really ends with. Where the prefix's end is in the prompt
depends on the FIM layout (``prefix_end``): at the prompt's end for suffix-first layouts and
models with no FIM format; just before the suffix marker for prefix-suffix-middle layouts, in
which case the removed text becomes the start of the middle, after the middle marker.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

import numpy as np

from ghostcomplete.backends.onnx.tokenizer import Tokenizer
from ghostcomplete.ranker.prompt import TEMPLATES

# The longest text backed off: a token longer than this (a long run of indentation, a whole
# word the user finished typing) is rarely a place the model would have split differently.
MAX_HEALED_CHARS = 16


class Vocabulary:
    """Every token's bytes, sorted, with the ids in the same order.

    Healing asks, per request, for the tokens whose bytes begin with some bytes (for a space,
    a third of a code model's vocabulary) plus the few that are a proper prefix of them. In a
    sorted list the first set is one contiguous range, found by two binary searches, and its
    ids are a slice of one array; the second set takes two more searches per byte of the
    removed text. So a request costs a few dozen comparisons and one masked copy of the
    logits, where scanning the vocabulary (or building a trie) per request would cost more
    than a forward pass saves; sorting is paid once, when the model loads."""

    def __init__(self, tokenizer: Tokenizer, size: int) -> None:
        specials = set(tokenizer.special.values())
        pieces: list[tuple[bytes, int]] = []
        for token in range(size):
            if token in specials:
                continue
            try:
                data = tokenizer.token_bytes(token)
            except (KeyError, ValueError, IndexError):  # ids past the tokenizer's vocabulary
                continue
            if data:
                pieces.append((data, token))
        pieces.sort()
        self.size = size
        self._sorted = [data for data, _ in pieces]
        self._ids = np.asarray([token for _, token in pieces], dtype=np.int64)

    def _range(self, head: bytes) -> tuple[int, int]:
        """Where the tokens beginning with ``head`` lie in the sorted order."""
        low = bisect_left(self._sorted, head)
        bound = _after(head)
        return low, len(self._sorted) if bound is None else bisect_left(self._sorted, bound, lo=low)

    def starting_with(self, head: bytes) -> np.ndarray:
        """Ids of the tokens whose bytes begin with ``head``."""
        low, high = self._range(head)
        return self._ids[low:high]

    def allowed(self, pending: bytes) -> np.ndarray:
        """Ids of the tokens that may come next while the answer must still begin with
        ``pending``: those beginning with it, and those that are a non-empty proper prefix of
        it after which some token begins with the rest (so the constraint never runs dry)."""
        parts = [self.starting_with(pending)]
        for length in range(1, len(pending)):
            head = pending[:length]
            low = bisect_left(self._sorted, head)
            high = bisect_right(self._sorted, head, lo=low)
            if high > low and len(self.starting_with(pending[length:])):
                parts.append(self._ids[low:high])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def masked(self, logits: np.ndarray, pending: bytes) -> np.ndarray:
        """``logits`` with every token not ``allowed`` at minus infinity."""
        keep = self.allowed(pending)
        row = np.full(logits.shape, -np.inf, dtype=logits.dtype)
        row[keep] = logits[keep]
        return row


def _after(head: bytes) -> bytes | None:
    """The smallest byte string greater than every string that begins with ``head``; None
    when there is none (``head`` is empty or all 0xff)."""
    trimmed = head.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


@dataclass(frozen=True)
class Forced:
    """Bytes the answer must begin with, and the vocabulary that finds the tokens allowed
    while it must (``decode``'s constraint); the bytes are left out of the answer's text."""

    removed: bytes
    vocabulary: Vocabulary


def narrowed(pending: bytes, token_bytes: bytes) -> bytes:
    """What the answer must still begin with after a token allowed at ``pending``."""
    return b"" if len(token_bytes) >= len(pending) else pending[len(token_bytes) :]


@dataclass(frozen=True)
class Healing:
    """A healed prompt: its tokens (the prefix's last token left out) and the bytes the
    answer must begin with (that token's), which are not shown."""

    tokens: list[int]
    removed: bytes

    @property
    def text(self) -> str:
        return self.removed.decode("utf-8")


def prefix_end(ids: list[int], family: str | None, special: dict[str, int]) -> int | None:
    """Where the prefix ends in a rendered prompt's ``ids``, or None where that is not known
    for sure: a layout whose markers are not special tokens of this tokenizer (their text
    could merge with the prefix's), or a marker that also occurs in the files' text."""
    template = TEMPLATES.get(family) if family is not None else None
    if template is None or not template.uses_suffix:
        return len(ids)  # the prompt is the prefix (maybe after a header)
    if template.suffix_first:
        if not template.middle:
            return len(ids)
        middle = special.get(template.middle)
        once = middle is not None and ids.count(middle) == 1 and ids[-1] == middle
        return len(ids) - 1 if once else None
    marker, middle = special.get(template.suffix), special.get(template.middle)
    if marker is None or middle is None or ids.count(marker) != 1 or ids.count(middle) != 1:
        return None
    return ids.index(marker) if ids[-1] == middle else None


def heal(ids: list[int], family: str | None, prefix: str, tokenizer: Tokenizer) -> Healing | None:
    """The healed form of a rendered prompt whose prefix text ends with ``prefix``, or None
    where healing would not be sound (see the module's docstring)."""
    end = prefix_end(ids, family, tokenizer.special)
    if end is None or end < 2:
        return None
    token = ids[end - 1]
    if token in tokenizer.special.values():
        return None
    removed = tokenizer.token_bytes(token)
    try:
        text = removed.decode("utf-8")
    except UnicodeDecodeError:  # part of a character: the rest is in the token before
        return None
    if not text or len(text) > MAX_HEALED_CHARS or "\n" in text or "\r" in text:
        return None
    if not prefix.endswith(text):  # the token is the header's or a marker's, not the user's
        return None
    return Healing(ids[: end - 1] + ids[end:], removed)
