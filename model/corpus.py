"""The built-in model's training data: Python files of the wheels pinned in corpus.toml.

Disjoint from the benchmark by construction: packages named in bench/corpus.toml or in
``excluded`` are refused, vendored folders are skipped, and so is every file whose content
equals a standard-library file (the stdlib is benchmark data too).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH_CORPUS = HERE.parent / "bench" / "corpus.toml"
VENDORED = {"_vendor", "vendor", "vendored", "_vendored", "_distutils"}
MAX_FILE_BYTES = 200_000


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    license: str


@dataclass(frozen=True)
class SourceFile:
    package: str
    path: str
    text: str


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def packages(corpus: Path = HERE / "corpus.toml") -> list[Package]:
    spec = tomllib.loads(corpus.read_text("utf-8"))
    refused = {_normal(n) for n in spec.get("excluded", [])} | benchmark_projects()
    found = [Package(p["name"], p["version"], p["license"]) for p in spec["packages"]]
    overlap = [p.name for p in found if _normal(p.name) in refused]
    if overlap:
        raise SystemExit(f"benchmark projects in the training data: {', '.join(overlap)}")
    return found


def benchmark_projects() -> set[str]:
    """Every project the benchmark corpus names (empty when bench/ is not beside model/)."""
    if not BENCH_CORPUS.exists():
        return set()
    spec = tomllib.loads(BENCH_CORPUS.read_text("utf-8"))
    names = {_normal(p["name"]) for p in spec.get("pypi", []) + spec.get("npm", [])}
    return names | {_normal(n.split("/")[-1]) for n in names}


def download(found: list[Package], into: Path) -> list[Path]:
    """The wheels, fetched with pip (already present ones are kept)."""
    into.mkdir(parents=True, exist_ok=True)
    wanted = [f"{p.name}=={p.version}" for p in found]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    subprocess.run([*command, "-q", "-d", str(into), *wanted], check=True)
    return sorted(into.glob("*.whl"))


def stdlib_digests() -> set[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return {
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*.py")
        if p.is_file() and not {"site-packages", "dist-packages"} & set(p.parts)
    }


def _wheel_package(wheel: Path, found: list[Package]) -> Package | None:
    stem = _normal(wheel.name.split("-")[0])
    for package in found:
        if _normal(package.name) == stem:
            return package
    return None


def read_sources(wheels: list[Path], found: list[Package]) -> list[SourceFile]:
    """The .py files of the wheels, minus vendored, benchmark and standard-library files."""
    refused = benchmark_projects() | {"attr", "attrs", "click", "packaging", "pluggy"}
    stdlib = stdlib_digests()
    sources: list[SourceFile] = []
    for wheel in wheels:
        package = _wheel_package(wheel, found)
        if package is None:
            continue
        with zipfile.ZipFile(wheel) as archive:
            for name in sorted(archive.namelist()):
                parts = name.split("/")
                if not name.endswith(".py") or ".dist-info" in parts[0]:
                    continue
                if VENDORED & set(parts) or _normal(parts[0]) in refused:
                    continue
                data = archive.read(name)
                if len(data) > MAX_FILE_BYTES or hashlib.sha256(data).hexdigest() in stdlib:
                    continue
                text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
                if text.strip():
                    sources.append(SourceFile(package.name, name, text))
    return sources


def is_held_out(source: SourceFile) -> bool:
    """About 2 % of files, chosen by a hash of the path, measure the held-out loss."""
    return hashlib.sha256(source.path.encode()).digest()[0] < 5
