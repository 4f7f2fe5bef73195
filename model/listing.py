"""``ghostcomplete model list``: the installed models, and with ``--all`` the catalogue's
entries that are not installed.

    ghostcomplete model list [--all] [--json]

Each installed model shows its size, precision ("int4 gptq" where the import calibrated it),
FIM family, licence and the speed measured on this machine (``ghostcomplete model measure
NAME`` records it), or "not measured" ("measured on another machine" for a models directory
copied from one).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ghostcomplete.backends.onnx.installed import (
    InstalledModel,
    installed_models,
    models_dir,
    speed_here,
)
from ghostcomplete.model.catalogue import CATALOGUE, CatalogueEntry

HEADER = ("NAME", "SIZE", "PRECISION", "FIM", "LICENCE", "SPEED ON THIS MACHINE")


def size_text(size: int) -> str:
    if size >= 1e9:
        return f"{size / 1e9:.1f} GB"
    if size >= 1e6:
        return f"{size / 1e6:.0f} MB"
    return f"{size / 1e3:.0f} kB"


def speed_text(model: InstalledModel) -> str:
    speed = speed_here(model)
    if not speed:
        return "measured on another machine" if model.speed else "not measured"
    parts = []
    if "decode_tokens_per_s" in speed:
        parts.append(f"{speed['decode_tokens_per_s']:g} tokens/s decode")
    if "keystroke_p50_ms" in speed:
        parts.append(f"{speed['keystroke_p50_ms']:g} ms a keystroke (p50)")
    return ", ".join(parts) or "measured (see --json)"


def precision_text(model: InstalledModel) -> str:
    calibration = model.extra.get("calibration")
    if isinstance(calibration, dict) and calibration.get("method"):
        return f"{model.precision} {calibration['method']}"
    return model.precision


def not_installed(models: Sequence[InstalledModel]) -> list[CatalogueEntry]:
    """Catalogue entries no installed model was pulled from."""
    pulled = {m.extra.get("catalogue") for m in models} | {m.name for m in models}
    return [entry for entry in CATALOGUE if entry.name not in pulled]


def rows(installed: Sequence[tuple[Path, InstalledModel]], every: bool) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = [
        (
            m.name,
            size_text(m.size_bytes),
            precision_text(m),
            m.fim_family or "-",
            m.license or "-",
            speed_text(m),
        )
        for _, m in installed
    ]
    if every:
        for entry in not_installed([m for _, m in installed]):
            state = "not installed" if entry.supported else "not installed; cannot convert yet"
            found.append(
                (
                    entry.name,
                    "~" + size_text(entry.approx_download_bytes) + " download",
                    "-",
                    entry.fim_family,
                    entry.license,
                    state,
                )
            )
    return found


def table(lines: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def as_json(installed: Sequence[tuple[Path, InstalledModel]], every: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {**asdict(m), "folder": str(folder), "installed": True} for folder, m in installed
    ]
    if every:
        for entry in not_installed([m for _, m in installed]):
            found.append({**asdict(entry), "installed": False, "supported": entry.supported})
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ghostcomplete model list",
        description="The installed models (`backend.onnx.model` takes a name from this list).",
    )
    parser.add_argument(
        "--all", action="store_true", help="also the catalogue's models not installed"
    )
    parser.add_argument("--json", action="store_true", help="one JSON list on stdout")
    args = parser.parse_args(argv)
    root = models_dir()
    installed = installed_models(root)
    if args.json:
        json.dump(as_json(installed, args.all), sys.stdout, indent=1)
        print()
        return 0
    found = rows(installed, args.all)
    print(f"models directory: {root}")
    if not found:
        print("no model is installed: `ghostcomplete model list --all` shows what can be pulled")
        return 0
    print(table([HEADER, *found]))
    return 0
