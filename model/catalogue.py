"""The models ``ghostcomplete model pull NAME`` knows: where each lives on the Hugging Face Hub,
which of its files to fetch, its fill-in-the-middle family and its licence.

Each entry is the upstream base model in safetensors with its ``tokenizer.json``, not a GGUF
build: the importer quantises to the precision asked for, and starting from the released
weights avoids quantising twice; the tokenizer file keeps every special token (the FIM
markers), which a GGUF's tokenizer conversion has been seen to lose. No file hash is pinned
here: pull checks each file against the hash the hub reports for it and records both.
"""

from __future__ import annotations

from dataclasses import dataclass

# Architectures (config.json's model_type) the importer converts.
SUPPORTED_ARCHITECTURES = frozenset({"qwen2", "llama"})

# What every entry fetches besides its weights.
_COMMON = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "LICENSE",
)
_WEIGHTS = ("*.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class CatalogueEntry:
    name: str  # what the user types, and the installed model's default name
    repo: str  # Hugging Face repository id
    revision: str  # branch, tag or commit
    patterns: tuple[str, ...]  # the repository's files to fetch (fnmatch patterns)
    architecture: str  # config.json's model_type
    fim_family: str  # a key of ranker.prompt.TEMPLATES
    license: str
    approx_download_bytes: int  # the files above, roughly
    summary: str

    @property
    def supported(self) -> bool:
        return self.architecture in SUPPORTED_ARCHITECTURES


_GB = 1_000_000_000

CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        "qwen2.5-coder-0.5b",
        "Qwen/Qwen2.5-Coder-0.5B",
        "main",
        _COMMON + _WEIGHTS,
        "qwen2",
        "qwen",
        "Apache-2.0",
        int(1.0 * _GB),
        "Qwen2.5-Coder 0.5B base: the smallest FIM model worth running on a laptop CPU",
    ),
    CatalogueEntry(
        "qwen2.5-coder-1.5b",
        "Qwen/Qwen2.5-Coder-1.5B",
        "main",
        _COMMON + _WEIGHTS,
        "qwen2",
        "qwen",
        "Apache-2.0",
        int(3.1 * _GB),
        "Qwen2.5-Coder 1.5B base",
    ),
    CatalogueEntry(
        "qwen2.5-coder-3b",
        "Qwen/Qwen2.5-Coder-3B",
        "main",
        _COMMON + _WEIGHTS,
        "qwen2",
        "qwen",
        # Unlike the other sizes, the 3B is not Apache-2.0 (its model card says so).
        "Qwen Research License",
        int(6.2 * _GB),
        "Qwen2.5-Coder 3B base (research licence: non-commercial)",
    ),
    CatalogueEntry(
        "starcoder2-3b",
        "bigcode/starcoder2-3b",
        "main",
        _COMMON + _WEIGHTS,
        "starcoder2",
        "starcoder2",
        "BigCode OpenRAIL-M v1",
        int(12.1 * _GB),
        "StarCoder2 3B (float32 weights)",
    ),
    CatalogueEntry(
        "deepseek-coder-1.3b",
        "deepseek-ai/deepseek-coder-1.3b-base",
        # The main branch has only pytorch_model.bin (a pickle); the hub's safetensors
        # conversion of the same weights lives on this ref.
        "refs/pr/3",
        (*_COMMON, "model.safetensors"),
        "llama",
        "deepseek",
        "DeepSeek License",
        int(2.7 * _GB),
        "DeepSeek-Coder 1.3B base (llama architecture)",
    ),
)


def find(name: str) -> CatalogueEntry:
    """The entry called ``name``; KeyError with a message naming the known ones."""
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    known = ", ".join(entry.name for entry in CATALOGUE)
    raise KeyError(f"no model named {name!r} in the catalogue; known: {known}")
