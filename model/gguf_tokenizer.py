"""The tokenizer files of a model read from a GGUF: tokenizer.json, tokenizer_config.json and
generation_config.json, in the Hugging Face layout the engine and the `tokenizers` package read.

A GGUF with ``tokenizer.ggml.model`` "gpt2" holds a byte-level BPE tokenizer: every token's
text (in GPT-2's printable stand-ins for bytes), the merges in order, each token's type, and
``tokenizer.ggml.pre``, the name of the split rule applied before BPE. The split rules are
not in the file, only their names, so each supported name maps to the rule the model was
trained with, as its own tokenizer.json writes it.

Every control or user-defined token (types 3 and 4) becomes an added special token, so that
``<|fim_prefix|>`` and its kind stay single tokens: converters that keep only the tokens the
metadata names (bos, eos, pad) leave the FIM markers to split into plain text, and a FIM
prompt then means nothing to the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostcomplete.model.decoder_source import SourceError

# llama.cpp's token types (gguf.TokenType).
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_BYTE_LEVEL = {"add_prefix_space": False, "trim_offsets": False}


def split_then_bytes(pattern: str) -> dict[str, Any]:
    return {
        "type": "Sequence",
        "pretokenizers": [
            {
                "type": "Split",
                "pattern": {"Regex": pattern},
                "behavior": "Isolated",
                "invert": False,
            },
            {"type": "ByteLevel", **_BYTE_LEVEL, "use_regex": False},
        ],
    }


def byte_level_bpe(
    vocab: dict[str, int],
    merges: list[str],
    special: dict[int, str],
    pre_tokenizer: dict[str, Any],
    normalizer: dict[str, Any] | None = None,
    ignore_merges: bool = False,
) -> dict[str, Any]:
    """A byte-level BPE ``tokenizer.json`` (Hugging Face format): ``merges`` as "left right",
    ``special`` the added tokens by id."""
    added = [
        {
            "id": index,
            "content": text,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for index, text in sorted(special.items())
    ]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", **_BYTE_LEVEL, "use_regex": False},
        "decoder": {"type": "ByteLevel", **_BYTE_LEVEL, "use_regex": False},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": ignore_merges,
            "vocab": vocab,
            "merges": [merge.split(" ", 1) for merge in merges],
        },
    }


@dataclass(frozen=True)
class _PreTokenizer:
    pre_tokenizer: dict[str, Any]
    normalizer: dict[str, Any] | None = None
    # Llama 3's tokenizer takes a whole split piece that is a token as it is, merges or not.
    ignore_merges: bool = False


# tokenizer.ggml.pre -> the rule, as the model's own tokenizer.json has it.
PRE_TOKENIZERS = {
    "qwen2": _PreTokenizer(split_then_bytes(QWEN2_SPLIT), {"type": "NFC"}),
    "llama-bpe": _PreTokenizer(split_then_bytes(_LLAMA3_SPLIT), ignore_merges=True),
    "gpt-2": _PreTokenizer({"type": "ByteLevel", **_BYTE_LEVEL, "use_regex": True}),
    "starcoder": _PreTokenizer(
        {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                {"type": "ByteLevel", **_BYTE_LEVEL, "use_regex": True},
            ],
        }
    ),
}


@dataclass
class GgufTokenizer:
    """What the GGUF says about its tokenizer, ready to write."""

    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: _PreTokenizer
    ids: dict[str, int] = field(default_factory=dict)  # bos/eos/pad/unk token ids
    add_bos: bool = False
    chat_template: str | None = None
    max_positions: int = 0

    @property
    def special(self) -> dict[int, str]:
        return {
            index: text
            for index, (text, kind) in enumerate(zip(self.tokens, self.types, strict=True))
            if kind in (_CONTROL, _USER_DEFINED)
        }

    @property
    def config_entries(self) -> dict[str, Any]:
        """Token ids config.json carries (the engine reads eos_token_id to stop)."""
        return {f"{name}_token_id": index for name, index in self.ids.items()}

    def tokenizer_json(self) -> dict[str, Any]:
        special = self.special
        vocab: dict[str, int] = {}
        for index, (text, kind) in enumerate(zip(self.tokens, self.types, strict=True)):
            # Unused ids (padding rows of the embedding) are no text at all.
            if index not in special and kind != _UNUSED:
                vocab.setdefault(text, index)
        return byte_level_bpe(
            vocab,
            self.merges,
            special,
            self.pre.pre_tokenizer,
            self.pre.normalizer,
            self.pre.ignore_merges,
        )

    def tokenizer_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "add_bos_token": self.add_bos,
            "clean_up_tokenization_spaces": False,
            "model_max_length": self.max_positions,
        }
        for name, index in self.ids.items():
            if 0 <= index < len(self.tokens):
                config[f"{name}_token"] = self.tokens[index]
        if self.chat_template:
            config["chat_template"] = self.chat_template
        return config

    def write(self, folder: Path) -> None:
        def dump(name: str, data: dict[str, Any]) -> None:
            text = json.dumps(data, ensure_ascii=False, indent=1)
            (folder / name).write_text(text + "\n", "utf-8")

        dump("tokenizer.json", self.tokenizer_json())
        dump("tokenizer_config.json", self.tokenizer_config())
        dump("generation_config.json", self.config_entries)


def _value(reader: Any, key: str, default: Any = None) -> Any:
    found = reader.fields.get(key)
    return default if found is None else found.contents()


def gguf_tokenizer(reader: Any, max_positions: int) -> GgufTokenizer:
    """The GGUF's tokenizer; SourceError when it is of a kind not supported."""
    kind = _value(reader, "tokenizer.ggml.model")
    if kind != "gpt2":
        raise SourceError(
            f"tokenizer {kind or '(none)'!r} is not supported: only byte-level BPE "
            "('gpt2', as in Qwen2 and Llama 3) converts to tokenizer.json"
        )
    pre_name = str(_value(reader, "tokenizer.ggml.pre", "gpt-2"))
    pre = PRE_TOKENIZERS.get(pre_name)
    if pre is None:
        raise SourceError(
            f"pre-tokenizer {pre_name!r} is not supported (supported: {', '.join(PRE_TOKENIZERS)})"
        )
    tokens = [str(t) for t in _value(reader, "tokenizer.ggml.tokens", [])]
    types = [int(t) for t in _value(reader, "tokenizer.ggml.token_type", [_NORMAL] * len(tokens))]
    merges = [str(m) for m in _value(reader, "tokenizer.ggml.merges", [])]
    if not tokens or len(types) != len(tokens) or not merges:
        raise SourceError("the GGUF's tokenizer lacks its tokens, token types or merges")
    ids = {}
    for name, key in (("bos", "bos"), ("eos", "eos"), ("pad", "padding"), ("unk", "unknown")):
        index = _value(reader, f"tokenizer.ggml.{key}_token_id")
        if index is not None:
            ids[name] = int(index)
    template = _value(reader, "tokenizer.chat_template")
    return GgufTokenizer(
        tokens,
        types,
        merges,
        pre,
        ids,
        bool(_value(reader, "tokenizer.ggml.add_bos_token", False)),
        str(template) if template else None,
        max_positions,
    )
