"""Models installed by name: ``ghostcomplete model import``/``pull`` write one folder per model
into the models directory, each with a manifest, and ``backend.onnx.model`` names one.

    $XDG_DATA_HOME/ghostcomplete/models/<name>/
        model.onnx (+ model.onnx.data), config.json, tokenizer files
        ghostcomplete-model.json   the manifest below

The manifest is written last, so a folder without one is an import that did not finish: it is
neither listed nor loaded.
"""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from ghostcomplete.backends.base import BackendError

MANIFEST = "ghostcomplete-model.json"
# A speed record's prefill time of N prompt tokens (``model measure``).
_PREFILL = re.compile(r"prefill_(\d+)_ms")
# A name is one path segment anyone can type: no separators, no leading dot.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


@dataclass(frozen=True)
class InstalledModel:
    """What ``ghostcomplete-model.json`` says about one installed model."""

    name: str
    # Where it came from: a GGUF file, a Hugging Face folder, a catalogue entry.
    source: str
    architecture: str  # the config's model_type: "qwen2", "llama", ...
    precision: str  # "int4", "int8", "fp16" or "fp32"
    fim_family: str | None = None
    license: str | None = None
    size_bytes: int = 0
    created: str = ""  # ISO 8601, UTC
    # Measured once on this machine after the import (prompt and decode tokens/s, keystroke
    # milliseconds, the provider and threads they were measured with); None until then.
    speed: dict[str, Any] | None = None
    # Anything else the importer wants to keep (the source's sha256, the converter's version).
    extra: dict[str, Any] = field(default_factory=dict)


def models_dir() -> Path:
    """``$GHOSTCOMPLETE_MODELS``, else ``$XDG_DATA_HOME/ghostcomplete/models``."""
    explicit = os.environ.get("GHOSTCOMPLETE_MODELS")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ghostcomplete" / "models"


def check_name(name: str) -> str:
    """``name`` when it can name a model folder; ValueError saying why not."""
    if not _NAME.fullmatch(name) or name.endswith("."):
        raise ValueError(
            f"{name!r} cannot name a model: use letters, digits, '.', '_', '+' or '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return name


def read_manifest(folder: Path) -> InstalledModel:
    """The manifest in ``folder``; BackendError when it is missing or unreadable."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise BackendError(f"{folder} has no {MANIFEST}: not an installed model") from None
    except (OSError, ValueError) as error:
        raise BackendError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise BackendError(f"{path} is not a JSON object")
    known = {f for f in InstalledModel.__dataclass_fields__}
    try:
        return InstalledModel(**{k: v for k, v in data.items() if k in known})
    except TypeError as error:
        raise BackendError(f"{path} lacks a field: {error}") from error


def write_manifest(folder: Path, model: InstalledModel) -> Path:
    """Write the manifest atomically (the folder's other files must already be complete)."""
    path = folder / MANIFEST
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(asdict(model), indent=2, sort_keys=True) + "\n", "utf-8")
    partial.replace(path)
    return path


def with_speed(folder: Path, speed: dict[str, Any]) -> InstalledModel:
    """Record a measured speed in the manifest of the model in ``folder``."""
    updated = replace(read_manifest(folder), speed=speed)
    write_manifest(folder, updated)
    return updated


def machine_fingerprint() -> dict[str, Any]:
    """The machine a speed is measured on (CPU model, cores, architecture, system): a speed
    recorded in a manifest holds only where the fingerprint is the same, not in a models
    directory copied to another machine."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "arch": platform.machine(),
        "system": platform.system(),
    }


def speed_number(speed: dict[str, Any], key: str) -> float | None:
    """A positive number the speed record holds under ``key``, else None."""
    value = speed.get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def longest_prefill(speed: dict[str, Any]) -> tuple[int, float] | None:
    """The longest prompt a measurement's ``prefill_N_ms`` times, and its milliseconds."""
    measured = []
    for key in speed:
        match = _PREFILL.fullmatch(key)
        ms = speed_number(speed, key)
        if match and ms is not None:
            measured.append((int(match.group(1)), ms))
    return max(measured) if measured else None


def prompt_tokens_per_s(speed: dict[str, Any]) -> float | None:
    """``prompt_tokens_per_s``, else the speed of the longest ``prefill_N_ms`` measured."""
    direct = speed_number(speed, "prompt_tokens_per_s")
    if direct is not None:
        return direct
    longest = longest_prefill(speed)
    if longest is None:
        return None
    tokens, ms = longest
    return tokens / (ms / 1000)


def speed_here(model: InstalledModel) -> dict[str, Any] | None:
    """The model's measured speed where it was measured on this machine (or the record does
    not say where), else None: a models directory copied from a faster machine must not make
    this one pick a model it cannot run in time."""
    speed = model.speed
    if not speed:
        return None
    where = speed.get("machine")
    if isinstance(where, dict) and where != machine_fingerprint():
        return None
    return speed


@cache  # read once a process: speed_here asks for every installed model
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def installed_models(root: Path | None = None) -> list[tuple[Path, InstalledModel]]:
    """Every finished model under ``root`` (the models directory), by name; a folder whose
    manifest cannot be read is skipped."""
    root = root or models_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if not (folder / MANIFEST).is_file():
            continue
        try:
            found.append((folder, read_manifest(folder)))
        except BackendError:
            continue
    return found


def installed_folder(name: str, root: Path | None = None) -> Path:
    """The folder of the installed model ``name``; BackendError naming what is installed."""
    root = root or models_dir()
    try:
        check_name(name)
    except ValueError as error:
        raise BackendError(str(error)) from None
    folder = root / name
    if (folder / MANIFEST).is_file():
        return folder
    names = [m.name for _, m in installed_models(root)]
    have = f"installed: {', '.join(names)}" if names else "none is installed"
    raise BackendError(
        f"no model named {name!r} in {root} ({have}); "
        "add one with `ghostcomplete model import` or `ghostcomplete model pull`"
    )


def _positive(config: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def parameter_count(config: dict[str, Any]) -> int | None:
    """About how many weights a decoder with this config.json has (Hugging Face or GPT-2
    names): its embedding, its output layer unless tied, and per layer the attention and a
    gated MLP (three matrices; GPT-2's has two, so it is overcounted); None where the config
    lacks a size. Biases and norms are left out."""
    hidden = _positive(config, "hidden_size", "n_embd")
    layers = _positive(config, "num_hidden_layers", "n_layer")
    vocab = _positive(config, "vocab_size")
    if hidden is None or layers is None or vocab is None:
        return None
    heads = _positive(config, "num_attention_heads", "n_head") or 1
    kv_heads = _positive(config, "num_key_value_heads") or heads
    head_dim = _positive(config, "head_dim") or hidden // heads
    inner = _positive(config, "intermediate_size", "n_inner") or 4 * hidden
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    tied = config.get("tie_word_embeddings", True) is not False
    return vocab * hidden * (1 if tied else 2) + layers * (attention + 3 * hidden * inner)


def read_json(path: Path, required: bool = True) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise BackendError(f"{path} is missing")
        return {}
    try:
        found = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise BackendError(f"cannot read {path}: {error}") from error
    if not isinstance(found, dict):
        raise BackendError(f"{path} is not a JSON object")
    return found
