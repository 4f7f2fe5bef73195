"""The benchmark corpus: pinned third-party projects, fetched once into a cache, and any
directory a user points at.

Projects come from ``corpus.toml`` (next to this file). PyPI sdists are fetched with
``pip download``, npm packages with ``npm pack``; both are checked against the pinned sha256
before they are unpacked. The local CPython standard library needs no download.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghostcomplete.model.gguf_parts import file_sha256

CORPUS_FILE = Path(__file__).with_name("corpus.toml")

# Extensions benchmarked, and the language family (files of one family are context for
# each other, as the server treats them).
LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
}
# The sides of the corpus (``split`` in corpus.toml): "dev" projects are where every fit and
# tuning choice is made, "test" projects are only reported on; "all" is both.
SPLITS = ("dev", "test", "all")
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", "build", "dist"}
_MAX_FILE_CHARS = 200_000
_MAX_REPO_FILES = 3000


class CorpusError(Exception):
    """A download failed, a hash did not match, or a path holds no code."""


@dataclass(frozen=True)
class Repo:
    """One repository of the corpus, unpacked on disk."""

    name: str
    version: str
    license: str
    source: str  # pypi | npm | stdlib | local
    root: Path
    files: tuple[str, ...]  # POSIX paths relative to root, sorted
    split: str = ""  # dev | test for the pinned corpus; "" for a local directory

    @property
    def label(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name

    def text(self, path: str) -> str:
        text = (self.root / path).read_text(encoding="utf-8", errors="replace")
        return text.replace("\r\n", "\n")


def family(path: str) -> str:
    language = language_of(path)
    return "javascript" if language.startswith(("javascript", "typescript")) else language


def language_of(path: str) -> str:
    return LANGUAGES.get(Path(path).suffix.lower(), "plaintext")


def default_cache() -> Path:
    configured = os.environ.get("GHOSTCOMPLETE_BENCH_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "ghostcomplete" / "bench"


def load_manifest(path: Path = CORPUS_FILE) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _usable(path: Path) -> bool:
    try:
        return path.stat().st_size <= _MAX_FILE_CHARS * 4 and path.suffix.lower() in LANGUAGES
    except OSError:
        return False


def _collect(root: Path, patterns: list[str]) -> tuple[str, ...]:
    found: set[str] = set()
    for pattern in patterns:
        for path in root.glob(pattern):
            relative = path.relative_to(root)
            if path.is_file() and _usable(path) and not _SKIP_DIRS & set(relative.parts):
                found.add(relative.as_posix())
    return tuple(sorted(found))[:_MAX_REPO_FILES]


def _fetch(kind: str, name: str, version: str, downloads: Path) -> Path:
    """Download one archive into ``downloads`` (or reuse it) and return its path."""
    downloads.mkdir(parents=True, exist_ok=True)
    if kind == "pypi":
        stem = f"{name.replace('-', '_')}-{version}"
        candidates = [f"{stem}.tar.gz", f"{name}-{version}.tar.gz"]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        command += ["--quiet", f"{name}=={version}", "-d", str(downloads)]
    else:
        stem = name.lstrip("@").replace("/", "-")
        candidates = [f"{stem}-{version}.tgz"]
        npm = shutil.which("npm")
        if npm is None:
            raise CorpusError(f"npm is needed to fetch {name}@{version} and was not found")
        command = [npm, "pack", f"{name}@{version}", "--silent", "--pack-destination"]
        command.append(str(downloads))
    for candidate in candidates:
        if (downloads / candidate).is_file():
            return downloads / candidate
    print(f"bench: fetching {name} {version} ...", file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    for candidate in candidates:
        if (downloads / candidate).is_file():
            return downloads / candidate
    raise CorpusError(
        f"could not fetch {name} {version} ({' '.join(command[:3])} exited "
        f"{done.returncode}): {done.stderr.strip()[-500:]}"
    )


def _unpack(archive: Path, target: Path) -> Path:
    """Unpack ``archive`` into ``target`` (once) and return its single top folder."""
    if not target.is_dir():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(archive) as bundle:
            bundle.extractall(partial, filter="data")
        partial.rename(target)
    tops = [child for child in target.iterdir() if child.is_dir()]
    return tops[0] if len(tops) == 1 else target


def pinned_repo(kind: str, entry: dict[str, Any], cache: Path) -> Repo:
    """Fetch (or reuse), verify and unpack one pinned project."""
    name, version = str(entry["name"]), str(entry["version"])
    archive = _fetch(kind, name, version, cache / "downloads")
    actual = file_sha256(archive)
    if actual != entry["sha256"]:
        raise CorpusError(
            f"{archive.name}: sha256 {actual} does not match the pinned {entry['sha256']}; "
            "delete the file to fetch it again"
        )
    folder = f"{name.lstrip('@').replace('/', '-')}-{version}"
    root = _unpack(archive, cache / "src" / folder)
    files = _collect(root, list(entry["include"]))
    if not files:
        raise CorpusError(f"{name} {version}: no files match {entry['include']}")
    return Repo(name, version, str(entry["license"]), kind, root, files, str(entry["split"]))


def stdlib_repo(package: str, cache: Path, split: str = "dev") -> Repo:
    """A package of the running interpreter's standard library, copied into the cache: where
    Python is installed may be a folder a .gitignore hides (pyenv's is), and the server
    rightly reads no ignored file."""
    installed = Path(sysconfig.get_paths()["stdlib"])
    files = _collect(installed, [f"{package}/**/*.py", f"{package}.py"])
    files = tuple(f for f in files if "/test" not in f and "idle_test" not in f)
    if not files:
        raise CorpusError(f"the standard library at {installed} has no package {package!r}")
    version = ".".join(str(part) for part in sys.version_info[:3])
    root = cache / "src" / f"stdlib-{version}"
    for path in files:
        copy = root / path
        if not copy.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(installed / path, copy)
    return Repo(f"stdlib/{package}", version, "PSF-2.0", "stdlib", root, files, split)


def local_repo(path: Path) -> Repo:
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise CorpusError(f"{path} is not a directory")
    files = _collect(root, [f"**/*{suffix}" for suffix in LANGUAGES])
    if not files:
        raise CorpusError(f"{path} holds no Python, JavaScript or TypeScript files")
    return Repo(root.name, "", "(local)", "local", root, files)


def selected(entry_split: str, split: str) -> bool:
    """Whether a project on side ``entry_split`` of the corpus is in a run of ``split``."""
    if split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}: one of {', '.join(SPLITS)}")
    if entry_split not in ("dev", "test"):
        raise CorpusError(f"corpus.toml: split {entry_split!r} is neither dev nor test")
    return split == "all" or entry_split == split


def load_repos(
    *,
    quick: bool,
    paths: list[Path],
    cache: Path,
    only: list[str] | None = None,
    split: str = "all",
) -> list[Repo]:
    """The repositories of one run: ``--repo`` paths when given, else the pinned corpus
    (only the offline standard-library subset with ``quick``), the projects of one side of
    it with ``split`` ("dev", "test"; "all" for both)."""
    if paths:
        return [local_repo(path) for path in paths]
    manifest = load_manifest()
    stdlib = manifest["stdlib"]
    stdlib_split = str(stdlib["split"])
    if quick:
        # The quick subset is the standard library's: a development-side smoke test.
        return [stdlib_repo(package, cache, stdlib_split) for package in stdlib["quick"]]
    repos: list[Repo] = []
    for kind in ("pypi", "npm"):
        for entry in manifest.get(kind, []):
            if only and entry["name"] not in only:
                continue
            if not selected(str(entry["split"]), split):
                continue
            repos.append(pinned_repo(kind, entry, cache))
    if selected(stdlib_split, split):
        repos += [
            stdlib_repo(package, cache, stdlib_split)
            for package in stdlib["packages"]
            if not only or f"stdlib/{package}" in only
        ]
    if not repos:
        raise CorpusError(f"no project of the corpus is in split {split!r} and --only {only}")
    return repos
