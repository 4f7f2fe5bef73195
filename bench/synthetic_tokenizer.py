"""A byte-level BPE ``tokenizer.json`` of any vocabulary size, learned in seconds from the
text it will encode, for random-weight models (the GPU check's Qwen2.5-shaped ones).

Real weights come with a real tokenizer; random ones need only one that behaves like it: the
same format and loader (``tokenizer.json`` -> tiktoken, backends/onnx/tokenizer.py), Qwen2's
NFC normalizer, split pattern and special tokens at Qwen2.5's ids, and about as many tokens
per character of code, so that a prompt packed to a budget has a realistic length. Merges
follow the most frequent pieces of the given text, each built left to right from bytes; where
the text runs out of pieces, merges of earlier tokens fill the vocabulary up to its size.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ghostcomplete.backends.onnx.tokenizer import byte_to_unicode
from ghostcomplete.model.gguf_tokenizer import QWEN2_SPLIT, byte_level_bpe, split_then_bytes

# The same pieces, near enough, in Python's re (letters: [^\W\d_]), to count them.
_PIECES = re.compile(
    r"'(?:[sStTmMdD]|ll|ve|re)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d"
    r"| ?(?:[^\s\w]|_)+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2.5's added tokens in their order, from id <regular tokens> on (151,643 there).
SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN2_REGULAR = 151_643
# Longer pieces (runs of spaces, long names) add merges that real tokenizers rarely have.
_MAX_PIECE_BYTES = 16


def learn_merges(texts: Iterable[str], regular: int) -> tuple[dict[str, int], list[str]]:
    """A vocabulary of exactly ``regular`` tokens (the 256 bytes first, then one token per
    merge, so ids grow with merge order) and its merges ("left right")."""
    if regular < 256:
        raise ValueError(f"a byte-level vocabulary has at least 256 tokens, not {regular}")
    chars = byte_to_unicode()
    vocab = {chars[byte]: byte for byte in range(256)}
    merges: list[str] = []

    def add(left: str, right: str) -> None:
        vocab[left + right] = len(vocab)
        merges.append(f"{left} {right}")

    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_PIECES.findall(text))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    for piece, _ in ranked:
        symbols = [chars[b] for b in piece.encode("utf-8")[:_MAX_PIECE_BYTES]]
        current = symbols[0]
        for symbol in symbols[1:]:
            if len(vocab) >= regular:
                return vocab, merges
            if current + symbol not in vocab:
                add(current, symbol)
            current += symbol
    # Fill: pairs of the earliest tokens, whose joins are new.
    tokens = list(vocab)
    for left in tokens:
        for right in tokens:
            if len(vocab) >= regular:
                return vocab, merges
            if left + right not in vocab:
                add(left, right)
    return vocab, merges


def tokenizer_spec(texts: Iterable[str], regular: int = QWEN2_REGULAR) -> dict[str, Any]:
    """``tokenizer.json`` (Hugging Face format) with ``regular`` tokens learned from ``texts``
    and Qwen2.5's special tokens after them."""
    vocab, merges = learn_merges(texts, regular)
    special = {regular + index: text for index, text in enumerate(SPECIAL)}
    return byte_level_bpe(vocab, merges, special, split_then_bytes(QWEN2_SPLIT), {"type": "NFC"})


def write_tokenizer(folder: Path, texts: Iterable[str], regular: int = QWEN2_REGULAR) -> int:
    """Write ``folder/tokenizer.json``; the number of tokens, special ones included."""
    spec = tokenizer_spec(texts, regular)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), "utf-8")
    return regular + len(SPECIAL)
