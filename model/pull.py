"""``ghostcomplete model pull NAME``: fetch a catalogue model from the Hugging Face Hub and
install it into the models directory.

    ghostcomplete model pull qwen2.5-coder-0.5b [--precision int4|int8|fp16|fp32] [--name N]
        [--calibrate]
        [--force]

The files are fetched and checked by ``model.hub`` (``HF_ENDPOINT``, ``HF_HOME``,
``HF_HUB_OFFLINE`` and ``HF_TOKEN`` apply) and converted by the importer, which moves a model
into place only once it is complete: a pull that fails anywhere leaves no model behind, and
``--force`` replaces an installed model only when its successor is ready. The manifest then
records where the model came from: the repository, the revision asked for, the commit it
resolved to and every file's sha256 and how it was checked.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.installed import (
    InstalledModel,
    check_name,
    models_dir,
    read_manifest,
    write_manifest,
)
from ghostcomplete.model.catalogue import (
    CATALOGUE,
    SUPPORTED_ARCHITECTURES,
    CatalogueEntry,
    find,
)
from ghostcomplete.model.hub import PullError, Snapshot, endpoint, fetch
from ghostcomplete.model.precisions import CALIBRATED_PRECISIONS, PRECISIONS


def pull(
    entry: CatalogueEntry,
    name: str | None = None,
    precision: str = "int4",
    force: bool = False,
    root: Path | None = None,
    say: Callable[[str], None] = print,
    calibrated: bool = False,
) -> tuple[Path, InstalledModel]:
    """Download, check, convert and install ``entry``; PullError when it cannot.
    ``calibrated``: GPTQ, as ``import_model``'s."""
    if not entry.supported:
        raise PullError(
            f"{entry.name} is a {entry.architecture} model, which the importer cannot convert "
            f"yet (it converts {', '.join(sorted(SUPPORTED_ARCHITECTURES))}); "
            "nothing was downloaded"
        )
    if calibrated and precision not in CALIBRATED_PRECISIONS:
        raise PullError(
            f"--calibrate is for {' and '.join(CALIBRATED_PRECISIONS)}, not {precision}; "
            "nothing was downloaded"
        )
    try:
        name = check_name(name or entry.name)
    except ValueError as error:
        raise PullError(str(error)) from None
    root = root or models_dir()
    target = root / name
    if target.exists() and not force:
        raise PullError(
            f"{name} is already installed in {root}: --force replaces it, --name N installs "
            "beside it"
        )
    snapshot = fetch(entry.repo, entry.revision, entry.patterns, say)
    return install(entry, snapshot, name, precision, root, say, force, calibrated)


def install(
    entry: CatalogueEntry,
    snapshot: Snapshot,
    name: str,
    precision: str,
    root: Path,
    say: Callable[[str], None],
    force: bool = False,
    calibrated: bool = False,
) -> tuple[Path, InstalledModel]:
    """Convert a checked snapshot into ``root/name`` and record where it came from."""
    # Imported here: the converter's dependencies are the `convert` extra's.
    from ghostcomplete.model.importer import ImportFailed, import_model

    try:
        # The importer builds beside the target and renames it into place once complete, so
        # a failed conversion leaves no model behind and a replaced one stays until then.
        folder, model = import_model(
            snapshot.folder,
            name=name,
            precision=precision,
            root=root,
            say=say,
            force=force,
            calibrated=calibrated,
        )
    except (ImportFailed, BackendError, ValueError, OSError) as error:
        raise PullError(f"converting {entry.repo} failed: {error}") from None
    licence = snapshot.folder / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, folder / "LICENSE")
    model = replace(
        model,
        source=f"{entry.repo}@{snapshot.commit}",
        license=entry.license,
        fim_family=model.fim_family or entry.fim_family,
        extra={
            **model.extra,
            "catalogue": entry.name,
            "hub": {
                "endpoint": endpoint(),
                "repo": entry.repo,
                "revision": entry.revision,
                "commit": snapshot.commit,
                "files": snapshot.files,
            },
        },
    )
    write_manifest(folder, model)
    return folder, read_manifest(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ghostcomplete model pull",
        description="Fetch a catalogue model from the Hugging Face Hub and install it "
        "(`ghostcomplete model list --all` shows the catalogue).",
    )
    parser.add_argument("model", metavar="NAME", help="a catalogue name")
    parser.add_argument("--precision", choices=PRECISIONS, default="int4")
    parser.add_argument("--name", default=None, help="install under this name instead")
    parser.add_argument("--force", action="store_true", help="replace an installed model")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="int4/int8: quantize with GPTQ (as `model import --calibrate`)",
    )
    args = parser.parse_args(argv)
    try:
        entry = find(args.model)
    except KeyError as error:
        print(f"ghostcomplete: model pull: {error.args[0]}", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        folder, model = pull(
            entry, args.name, args.precision, args.force, say=say, calibrated=args.calibrate
        )
    except PullError as error:
        print(f"ghostcomplete: model pull: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "ghostcomplete: model pull: interrupted; nothing was installed "
            "(files already fetched stay in the Hugging Face cache)",
            file=sys.stderr,
        )
        return 130
    print(f"installed {model.name} ({model.precision}, {entry.license}) in {folder}")
    print(f'use it with "backend": {{"kind": "onnx", "onnx": {{"model": "{model.name}"}}}}')
    return 0


__all__ = ["CATALOGUE", "PullError", "main", "pull"]
