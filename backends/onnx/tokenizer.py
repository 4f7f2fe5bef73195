"""Tokenizers of local models: byte-level BPE through tiktoken, else the `tokenizers` package.

A model folder holds either ``tokenizer.tiktoken`` (base64 token, rank per line) with
``tiktoken.json`` (the split pattern and the special tokens) — the format of the built-in
model — or a Hugging Face ``tokenizer.json``. A byte-level BPE ``tokenizer.json`` whose token
ids follow its merge order (GPT-2, StarCoder, Qwen2, Llama 3, ...) is turned into a tiktoken
encoding: same tokens, several times faster (``bench.tokenizer_check``). Its Unicode
normalizer, where it has one (Qwen2's NFC), is applied with ``unicodedata`` before the text
reaches tiktoken. Anything else is loaded with the `tokenizers` package.
"""

from __future__ import annotations

import base64
import json
import logging
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import tiktoken

from ghostcomplete.backends.base import BackendError

log = logging.getLogger("ghostcomplete.onnx")

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class Tokenizer(Protocol):
    special: dict[str, int]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special-token strings in it become their ids."""
        ...

    def token_bytes(self, token: int) -> bytes:
        """The bytes one token stands for (b"" for special tokens)."""
        ...


class TiktokenTokenizer:
    def __init__(self, encoding: tiktoken.Encoding, form: str | None = None) -> None:
        """``form``: the Unicode normalization (UNICODE_FORMS) the text gets first."""
        self.encoding = encoding
        self.form: Any = form  # Any: typeshed wants one of four literals for unicodedata
        self.special = dict(encoding._special_tokens)
        self._special_ids = set(self.special.values())
        self._cache: dict[int, bytes] = {}

    def encode(self, text: str) -> list[int]:
        if self.form and not unicodedata.is_normalized(self.form, text):
            text = unicodedata.normalize(self.form, text)
        return self.encoding.encode(text, allowed_special="all")

    def token_bytes(self, token: int) -> bytes:
        found = self._cache.get(token)
        if found is None:
            found = (
                b""
                if token in self._special_ids
                else self.encoding.decode_single_token_bytes(token)
            )
            self._cache[token] = found
        return found


class HfTokenizer:
    """Through the `tokenizers` package (an optional dependency)."""

    def __init__(self, path: Path, byte_level: bool | None = None) -> None:
        """``byte_level``: whether the file's decoder is byte-level, where the caller has
        read it already (the file is large: read once)."""
        try:
            from tokenizers import Tokenizer as _HfTokenizer
        except ImportError as error:
            raise BackendError(
                f"{path} needs the 'tokenizers' package (pip install tokenizers)"
            ) from error
        if byte_level is None:
            byte_level = _byte_level_decoder(json.loads(path.read_text("utf-8")))
        self._tokenizer = _HfTokenizer.from_file(str(path))
        added = self._tokenizer.get_added_tokens_decoder()
        self.special = {token.content: index for index, token in added.items()}
        self._special_ids = set(self.special.values())
        self._table = _unicode_to_byte() if byte_level else None
        # The same table for str.translate: each stand-in to the Latin-1 character of its byte.
        self._latin1 = {ord(ch): chr(byte) for ch, byte in (self._table or {}).items()}

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def token_bytes(self, token: int) -> bytes:
        if token in self._special_ids:
            return b""
        piece = self._tokenizer.id_to_token(token) or ""
        table = self._table
        if table is not None:
            try:
                return piece.translate(self._latin1).encode("latin-1")
            except UnicodeEncodeError:  # a character outside the byte alphabet: left out
                return bytes(table[ch] for ch in piece if ch in table)
        if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            return bytes([int(piece[3:5], 16)])
        return piece.replace("▁", " ").encode("utf-8")


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in of each byte (byte-level BPE's alphabet)."""
    visible = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {byte: chr(byte) for byte in visible}
    extra = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _unicode_to_byte() -> dict[str, int]:
    return {char: byte for byte, char in byte_to_unicode().items()}


def _byte_level_decoder(spec: dict[str, Any]) -> bool:
    decoder = spec.get("decoder") or {}
    kinds = [d.get("type") for d in decoder.get("decoders", [])] or [decoder.get("type")]
    return "ByteLevel" in kinds


def _split_pattern(pre: dict[str, Any] | None) -> str | None:
    """The regex a byte-level pre-tokenizer splits with, or None when tiktoken can't mimic it."""
    if not pre:
        return None
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    pattern: str | None = None
    byte_level = False
    for step in steps or []:
        kind = step.get("type")
        if kind == "Split" and pattern is None and step.get("behavior") == "Isolated":
            regex = (step.get("pattern") or {}).get("Regex")
            if regex is None or step.get("invert"):
                return None
            pattern = regex
        elif kind == "ByteLevel" and not step.get("add_prefix_space", False):
            if step.get("use_regex", True):
                if pattern is not None:
                    return None
                pattern = GPT2_PATTERN
            byte_level = True
        else:
            return None
    return pattern if byte_level else None


# The Unicode normalizers a tokenizer.json may name that ``unicodedata`` repeats exactly.
UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")


def unicode_form(spec: dict[str, Any]) -> str | None:
    """The normalization a ``tokenizer.json`` applies before splitting: a UNICODE_FORMS name,
    "" for none, None for one that ``unicodedata`` cannot repeat (lowercasing, replacements)."""
    normalizer = spec.get("normalizer")
    if not normalizer:
        return ""
    steps = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else [normalizer]
    kinds = [step.get("type") for step in steps or []]
    if not kinds:
        return ""
    if len(kinds) == 1 and kinds[0] in UNICODE_FORMS:
        return str(kinds[0])
    return None


def tiktoken_from_hf(
    spec: dict[str, Any], name: str, normalized: bool = False
) -> tiktoken.Encoding | None:
    """A tiktoken encoding equal to a byte-level BPE ``tokenizer.json``, or None.
    ``normalized``: the caller applies the file's Unicode normalizer (``unicode_form``) to
    the text first, so a file with one is taken too; else only files without one are."""
    model = spec.get("model") or {}
    form = unicode_form(spec)
    if form is None or (form and not normalized):
        return None
    if model.get("type") != "BPE" or not _byte_level_decoder(spec):
        return None
    pattern = _split_pattern(spec.get("pre_tokenizer"))
    if pattern is None:
        return None
    table = _unicode_to_byte()
    vocab: dict[str, int] = model.get("vocab") or {}
    added = {t["content"]: int(t["id"]) for t in spec.get("added_tokens") or []}
    ranks: dict[bytes, int] = {}
    for piece, index in vocab.items():
        if piece in added:
            continue
        if any(ch not in table for ch in piece):
            return None
        ranks[bytes(table[ch] for ch in piece)] = index
    if any(bytes([b]) not in ranks for b in range(256)):
        return None
    # tiktoken merges the pair whose result has the lowest id; HF the earliest merge. The two
    # agree when the ids of merge results grow with the merge order.
    last = -1
    for merge in model.get("merges") or []:
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        merged = vocab.get(left + right)
        if merged is None or merged <= last:
            return None
        last = merged
    special = {text: index for text, index in added.items() if index not in ranks.values()}
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)


def load_tiktoken_file(ranks_path: Path, meta_path: Path) -> tiktoken.Encoding:
    meta = json.loads(meta_path.read_text("utf-8"))
    ranks: dict[bytes, int] = {}
    for line in ranks_path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        meta.get("name", ranks_path.parent.name),
        pat_str=meta["pattern"],
        mergeable_ranks=ranks,
        special_tokens={k: int(v) for k, v in meta.get("special_tokens", {}).items()},
    )


def write_tiktoken_file(
    folder: Path,
    name: str,
    pattern: str,
    ranks: Iterable[tuple[bytes, int]],
    special: dict[str, int],
) -> None:
    """The two files ``load_tokenizer`` reads first (used by model/train.py)."""
    lines = [f"{base64.b64encode(token).decode()} {rank}" for token, rank in ranks]
    (folder / "tokenizer.tiktoken").write_text("\n".join(lines) + "\n", "utf-8")
    meta = {"name": name, "pattern": pattern, "special_tokens": special}
    (folder / "tiktoken.json").write_text(json.dumps(meta, indent=1) + "\n", "utf-8")


def load_tokenizer(folder: Path) -> Tokenizer:
    """The tokenizer of a model folder; BackendError when there is none it can read."""
    try:
        if (folder / "tokenizer.tiktoken").exists():
            encoding = load_tiktoken_file(folder / "tokenizer.tiktoken", folder / "tiktoken.json")
            return TiktokenTokenizer(encoding)
        hf = folder / "tokenizer.json"
        if hf.exists():
            spec = json.loads(hf.read_text("utf-8"))
            converted = tiktoken_from_hf(spec, folder.name, normalized=True)
            if converted is not None:
                log.info("tokenizer: %s as tiktoken byte-level BPE", hf)
                return TiktokenTokenizer(converted, unicode_form(spec) or None)
            byte_level = _byte_level_decoder(spec)
            del spec  # the parsed file is tens of MB; the tokenizers package reads its own
            log.info("tokenizer: %s through the tokenizers package", hf)
            return HfTokenizer(hf, byte_level)
    except (OSError, ValueError, KeyError) as error:
        raise BackendError(f"cannot read the tokenizer in {folder}: {error}") from error
    raise BackendError(f"no tokenizer in {folder} (tokenizer.json or tokenizer.tiktoken)")


class IncrementalDecoder:
    """Token bytes in, text out, holding back an incomplete UTF-8 character at the end; the
    first ``skip`` bytes are dropped (text the answer must begin with and the editor has)."""

    def __init__(self, tokenizer: Tokenizer, skip: int = 0) -> None:
        self.tokenizer = tokenizer
        self._pending = b""
        self._skip = skip
        self.text = ""

    def push(self, token: int) -> str:
        """Add a token; returns the text it completed (possibly empty)."""
        data = self._pending + self.tokenizer.token_bytes(token)
        if self._skip:
            dropped = min(self._skip, len(data))
            data, self._skip = data[dropped:], self._skip - dropped
        cut = len(data)
        # Hold back at most 3 bytes of a character whose remaining bytes have not come yet.
        for back in range(1, min(4, len(data)) + 1):
            byte = data[-back]
            if byte & 0xC0 == 0x80:
                continue
            if byte & 0x80 and back < _utf8_length(byte):
                cut = len(data) - back
            break
        self._pending = data[cut:]
        piece = data[:cut].decode("utf-8", errors="replace")
        self.text += piece
        return piece


def _utf8_length(lead: int) -> int:
    if lead >= 0xF0:
        return 4
    if lead >= 0xE0:
        return 3
    return 2 if lead >= 0xC0 else 1
