"""Wheels for the GPU check, carried to the device machine in parts (bench/device/README.md).

The device machine has no network and takes at most 64 MiB a call, the working tree
included, while ``onnxruntime-gpu`` is a wheel of about 256 MB. So, here:

    python bench/device_parts.py prepare [--out .device]

downloads the wheels that bench/device/wheels.txt pins (``sha256sum`` format; the machine
lacks them), checks each one's sha256, and cuts the large one into parts sized so that the
working tree plus one part stays under the limit; ``.device/manifest.json`` lists them. There,
``bench/device/check.sh receive N`` calls ``receive`` with part N, in any order and as often as
needed; once every part has come, ``assemble`` joins them and checks the whole wheel's sha256
against the manifest and the pins.

Standard library only: check.sh runs this file by its path before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
# What one device call may carry: the working tree plus the carried paths.
CALL_LIMIT = 64 * MIB
# Kept free under the limit: files that change between preparing and calling.
MARGIN = 2 * MIB
# A wheel above this is cut into parts; the smaller ones travel whole with part 1.
LARGE = 16 * MIB
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
MANIFEST = "manifest.json"


class PartsError(Exception):
    """A part or wheel that is missing, of the wrong size or of the wrong sha256."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def read_pins(path: Path) -> dict[str, str]:
    """File name -> sha256, from ``sha256sum``-format lines (``#`` starts a comment)."""
    pins: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            digest, name = line.split(maxsplit=1)
            pins[name.lstrip("*")] = digest.lower()
    return pins


def requirement(wheel_name: str) -> str:
    """``name==version`` of a wheel file name."""
    name, version = wheel_name.split("-")[:2]
    return f"{name}=={version}"


def split(source: Path, folder: Path, part_bytes: int, first_bytes: int) -> list[dict[str, Any]]:
    """Cut ``source`` into ``folder/part-N`` (N from 1): the first of at most ``first_bytes``
    (it travels with the small wheels), the others of at most ``part_bytes``, as few as that
    allows; their names, sizes and sha256."""
    size = source.stat().st_size
    count = 1 + max(0, math.ceil((size - first_bytes) / part_bytes))
    parts = []
    with source.open("rb") as stream:
        for number in range(1, count + 1):
            data = stream.read(first_bytes if number == 1 else part_bytes)
            target = folder / f"part-{number}"
            target.write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            parts.append({"file": target.name, "bytes": len(data), "sha256": digest})
    return parts


def receive(manifest: dict[str, Any], part: Path, store: Path) -> list[str]:
    """Keep a carried part in ``store`` after checking it; the names still missing."""
    wanted = {p["file"]: p for p in manifest["parts"]}
    entry = wanted.get(part.name)
    if entry is None:
        raise PartsError(f"{part.name} is not a part of {manifest['wheel']['file']}")
    if not part.is_file():
        raise PartsError(f"{part} was not carried")
    if part.stat().st_size != entry["bytes"] or sha256_of(part) != entry["sha256"]:
        raise PartsError(f"{part} is not the part the manifest lists (size or sha256)")
    store.mkdir(parents=True, exist_ok=True)
    kept = store / part.name
    if not kept.exists() or sha256_of(kept) != entry["sha256"]:
        shutil.copyfile(part, kept)
    return missing(manifest, store)


def missing(manifest: dict[str, Any], store: Path) -> list[str]:
    return [
        p["file"]
        for p in manifest["parts"]
        if not (store / p["file"]).is_file() or (store / p["file"]).stat().st_size != p["bytes"]
    ]


def assemble(manifest: dict[str, Any], store: Path, out: Path, pins: dict[str, str]) -> Path:
    """Join the parts in ``store`` into ``out``/the wheel's name; PartsError unless every
    part is there and the result has the sha256 of both the manifest and the pins."""
    wheel = manifest["wheel"]
    absent = missing(manifest, store)
    if absent:
        raise PartsError(f"parts still missing: {', '.join(absent)}")
    pinned = pins.get(wheel["file"])
    if pinned != wheel["sha256"]:
        raise PartsError(f"{wheel['file']}: the manifest's sha256 is not the pinned one")
    out.mkdir(parents=True, exist_ok=True)
    target = out / wheel["file"]
    partial = target.with_suffix(".partial")
    with partial.open("wb") as joined:
        for entry in manifest["parts"]:
            with (store / entry["file"]).open("rb") as piece:
                shutil.copyfileobj(piece, joined, 4 * MIB)
    found = sha256_of(partial)
    if found != wheel["sha256"]:
        partial.unlink()
        raise PartsError(f"the joined {wheel['file']} has sha256 {found}, not {wheel['sha256']}")
    partial.replace(target)
    return target


def check_wheels(folder: Path, manifest: dict[str, Any], pins: dict[str, str]) -> list[Path]:
    """The small wheels carried whole, each checked against the manifest and the pins."""
    found = []
    for entry in manifest["wheels"]:
        path = folder / entry["file"]
        if not path.is_file():
            raise PartsError(f"{path} was not carried")
        digest = sha256_of(path)
        if digest != entry["sha256"] or pins.get(entry["file"]) != digest:
            raise PartsError(f"{path} does not have its pinned sha256")
        found.append(path)
    return found


def travelling_bytes(root: Path) -> int:
    """What a device call sends besides its carried paths: tracked files and untracked ones
    git does not ignore, plus ``shared/`` where the checkout has one."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    total = 0
    for name in set(listed.decode("utf-8", "surrogateescape").split("\0")):
        path = root / name
        if name and path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    shared = root / "shared"
    if shared.is_dir() and not shared.is_symlink():
        total += sum(p.stat().st_size for p in shared.rglob("*") if p.is_file())
    return total


def download(pins: dict[str, str], cache: Path) -> None:
    """Fetch the pinned wheels missing from ``cache`` (CPython 3.12, x86-64 Linux); a
    PartsError for one whose sha256 is not its pin."""
    cache.mkdir(parents=True, exist_ok=True)
    wanted = [n for n, d in pins.items() if not (cache / n).is_file() or sha256_of(cache / n) != d]
    if wanted:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        command += ["-d", str(cache), *(requirement(n) for n in wanted)]
        subprocess.run(command, check=True)
    for name, digest in pins.items():
        if not (cache / name).is_file():
            raise PartsError(f"pip did not save {name} (another build of it?)")
        if sha256_of(cache / name) != digest:
            raise PartsError(f"{name} does not have its pinned sha256 {digest}")


def prepare(root: Path, out: Path, pins_path: Path) -> dict[str, Any]:
    """Download, check and cut; write the manifest; the plan of the calls."""
    pins = read_pins(pins_path)
    cache = out / "cache"
    download(pins, cache)
    large = [n for n in pins if (cache / n).stat().st_size > LARGE]
    if len(large) != 1:
        raise PartsError(f"expected one wheel over {LARGE // MIB} MiB, found {large}")
    small_folder = out / "wheels"
    shutil.rmtree(small_folder, ignore_errors=True)
    small_folder.mkdir(parents=True)
    small = sorted(n for n in pins if n not in large)
    for name in small:
        shutil.copyfile(cache / name, small_folder / name)
    small_bytes = sum((small_folder / n).stat().st_size for n in small)
    tree = travelling_bytes(root)
    room = CALL_LIMIT - MARGIN - tree
    if room - small_bytes < 8 * MIB:
        raise PartsError(f"the working tree takes {tree / MIB:.1f} MiB: too little room for parts")
    for old in out.glob("part-*"):
        old.unlink()
    parts = split(cache / large[0], out, room, room - small_bytes)
    wheel = {"file": large[0], "bytes": (cache / large[0]).stat().st_size, "sha256": pins[large[0]]}
    manifest = {
        "wheel": wheel,
        "parts": parts,
        "wheels": [{"file": n, "sha256": pins[n]} for n in small],
        "tree_bytes": tree,
        "small_bytes": small_bytes,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")
    return manifest


def plan(manifest: dict[str, Any]) -> str:
    tree = manifest["tree_bytes"]
    lines = [f"working tree that travels: {tree / MIB:.1f} MiB"]
    wheels = manifest["wheels"]
    for index, part in enumerate(manifest["parts"]):
        carried = part["bytes"] + (manifest["small_bytes"] if index == 0 else 0)
        extra = " + .device/wheels" if index == 0 and wheels else ""
        lines.append(
            f"call {index + 1}: carry .device/{part['file']}{extra} and .device/{MANIFEST}: "
            f"{(tree + carried) / MIB:.1f} MiB with the tree"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    here = Path(__file__).resolve().parent
    ready = commands.add_parser("prepare", help="download, check and cut the wheels (here)")
    ready.add_argument("--root", type=Path, default=here.parent)
    ready.add_argument("--out", type=Path, default=None, help="default ROOT/.device")
    ready.add_argument("--pins", type=Path, default=here / "device" / "wheels.txt")
    take = commands.add_parser("receive", help="keep a carried part; join them when complete")
    take.add_argument("--manifest", type=Path, required=True)
    take.add_argument("--part", type=Path, required=True)
    take.add_argument("--store", type=Path, required=True, help="where the parts accumulate")
    take.add_argument("--wheels", type=Path, required=True, help="where the joined wheel goes")
    take.add_argument("--pins", type=Path, required=True)
    take.add_argument("--small", type=Path, required=True, help="the small wheels' folder")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            manifest = prepare(args.root, args.out or args.root / ".device", args.pins)
            print(plan(manifest))
            return 0
        manifest = json.loads(args.manifest.read_text("utf-8"))
        pins = read_pins(args.pins)
        # The small wheels come with part 1; kept beside the parts, they outlive the call.
        carried = args.store / "wheels"
        if args.small.is_dir():
            carried.mkdir(parents=True, exist_ok=True)
            for entry in manifest["wheels"]:
                if (args.small / entry["file"]).is_file():
                    shutil.copyfile(args.small / entry["file"], carried / entry["file"])
        absent = receive(manifest, args.part, args.store)
        if absent:
            print(f"kept {args.part.name}; still missing: {' '.join(absent)}")
            return 0
        joined = assemble(manifest, args.store, args.wheels, pins)
        for path in check_wheels(carried, manifest, pins):
            shutil.copyfile(path, args.wheels / path.name)
        print(f"complete: {joined} and {len(manifest['wheels'])} small wheels")
        return 0
    except (PartsError, OSError, subprocess.CalledProcessError) as error:
        print(f"device parts: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
