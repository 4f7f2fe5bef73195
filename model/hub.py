"""Fetch a repository's files from the Hugging Face Hub into its cache, checked against the
hashes the hub reports, for ``ghostcomplete model pull``.

huggingface_hub does the transfer: it reads ``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE``,
``HF_TOKEN`` and ``HF_HUB_OFFLINE``, keeps finished files in its cache (a second pull fetches
nothing) and resumes a transfer that breaks off with a ranged request. It checks sizes, not
contents, so each file is hashed here: an LFS file against the sha256 the hub lists for it,
any other against its git blob id. A file that fails is removed from the cache, so that the
next pull fetches it again instead of trusting it.

Offline, the files come from the cache alone; they are checked against the names the cache
stores them under (the hub's etag: the sha256 of an LFS file, the blob id of another).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ghostcomplete.model.gguf_parts import file_sha256

try:
    from huggingface_hub.errors import RemoteEntryNotFoundError
except ImportError:  # huggingface_hub < 1.0 names the HTTP error so
    from huggingface_hub.errors import (  # type: ignore[assignment]
        EntryNotFoundError as RemoteEntryNotFoundError,
    )

# Files an importable Hugging Face folder cannot do without.
REQUIRED = ("config.json", "tokenizer.json")


class PullError(Exception):
    """A pull that cannot go on; the message is one line for the user."""


@dataclass(frozen=True)
class Snapshot:
    """Files of one commit of a repository, all checked, in the hub's cache."""

    folder: Path  # the cache's snapshots/<commit> folder
    repo: str
    revision: str  # as asked for
    commit: str
    # repository path -> {"sha256", "size", "checked": how}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


def offline() -> bool:
    return bool(constants.HF_HUB_OFFLINE)


def endpoint() -> str:
    return str(constants.ENDPOINT)


def hub_cache() -> Path:
    return Path(constants.HF_HUB_CACHE)


def matching(paths: Iterable[str], patterns: Iterable[str]) -> list[str]:
    pattern_list = list(patterns)
    return sorted(p for p in paths if any(fnmatch.fnmatch(p, pat) for pat in pattern_list))


def git_blob_id(path: Path) -> str:
    """The id git gives the file's content (what the hub lists for a file not in LFS)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    repo: str, revision: str, patterns: Iterable[str], say: Callable[[str], None] = print
) -> Snapshot:
    """The files of ``repo`` at ``revision`` that match ``patterns``, downloaded (or found in
    the cache) and checked; PullError saying what went wrong otherwise."""
    patterns = tuple(patterns)
    try:
        if offline():
            return _from_cache(repo, revision, patterns, say)
        return _from_hub(repo, revision, patterns, say)
    except PullError:
        raise
    except GatedRepoError:
        raise PullError(
            f"{repo} is gated: accept its terms at {endpoint()}/{repo}, then log in "
            "(`hf auth login`) or set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise PullError(
            f"{repo} was not found on {endpoint()} (or it is private: log in or set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise PullError(f"{repo} has no revision {revision!r} on {endpoint()}") from None
    except RemoteEntryNotFoundError as error:
        raise PullError(
            f"{repo}: a file is missing on {endpoint()} ({_first_line(error)})"
        ) from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "?"
        raise PullError(f"{endpoint()} answered HTTP {status} for {repo}") from None
    except (OfflineModeIsEnabled, LocalEntryNotFoundError):
        raise PullError(_not_cached(repo, revision)) from None
    except _transport_errors() as error:
        raise PullError(
            f"cannot download {repo} from {endpoint()}: {_first_line(error)} "
            "(set HF_HUB_OFFLINE=1 to use what is already in the cache)"
        ) from None


def _from_hub(
    repo: str, revision: str, patterns: tuple[str, ...], say: Callable[[str], None]
) -> Snapshot:
    info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    if not info.sha:
        raise PullError(f"{endpoint()} did not say which commit {repo}@{revision} is")
    listed = {s.rfilename: s for s in info.siblings or []}
    wanted = matching(listed, patterns)
    _check_complete(repo, wanted)
    files: dict[str, dict[str, Any]] = {}
    folder: Path | None = None
    for name in wanted:
        sibling = listed[name]
        size = sibling.lfs.size if sibling.lfs else sibling.size
        say(f"fetching {name}" + (f" ({size / 1e6:,.0f} MB)" if size and size >= 1e6 else ""))
        # By the asked-for revision, not the commit, so that the cache records which commit
        # it is (what offline mode reads).
        path = Path(hf_hub_download(repo, name, revision=revision))
        commit = path.parents[len(Path(name).parts) - 1].name
        if commit != info.sha:
            raise PullError(f"{repo}@{revision} moved to {commit} during the pull: pull again")
        folder = path.parents[len(Path(name).parts) - 1]
        files[name] = _check(
            path, name, sibling.lfs.sha256 if sibling.lfs else None, sibling.blob_id
        )
    assert folder is not None
    return Snapshot(folder, repo, revision, info.sha, files)


def _check(path: Path, name: str, sha256: str | None, blob_id: str | None) -> dict[str, Any]:
    actual = file_sha256(path)
    if sha256 is not None:
        expected, got, how = sha256.lower(), actual, "sha256"
    elif blob_id is not None:
        expected, got, how = blob_id.lower(), git_blob_id(path), "git blob id"
    else:
        return {"sha256": actual, "size": path.stat().st_size, "checked": "unchecked"}
    if got != expected:
        _evict(path)
        raise PullError(
            f"{name}: {how} {got[:16]}… does not match the hub's {expected[:16]}…; "
            "the file was removed from the cache and nothing was installed"
        )
    return {"sha256": actual, "size": path.stat().st_size, "checked": how}


def _evict(path: Path) -> None:
    """Remove a cached file and the blob its pointer leads to."""
    blob = path.resolve()
    for each in {blob, path}:
        with contextlib.suppress(FileNotFoundError):
            each.unlink()


def _from_cache(
    repo: str, revision: str, patterns: tuple[str, ...], say: Callable[[str], None]
) -> Snapshot:
    try:
        folder = Path(
            snapshot_download(
                repo, revision=revision, allow_patterns=list(patterns), local_files_only=True
            )
        )
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise PullError(_not_cached(repo, revision)) from None
    present = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    wanted = matching(present, patterns)
    _check_complete(repo, wanted, offline=True)
    say(f"offline: using {len(wanted)} files of {repo} from {hub_cache()}")
    files: dict[str, dict[str, Any]] = {}
    for name in wanted:
        path = folder / name
        # The cache names each blob by the hub's etag: an LFS file's sha256, else its blob id.
        etag = path.resolve().name if path.is_symlink() else ""
        sha = etag if len(etag) == 64 else None
        blob = etag if len(etag) == 40 else None
        files[name] = _check(path, name, sha, blob)
    return Snapshot(folder, repo, revision, folder.name, files)


def _check_complete(repo: str, wanted: list[str], offline: bool = False) -> None:
    missing = [name for name in REQUIRED if name not in wanted]
    if not any(name.endswith(".safetensors") for name in wanted):
        missing.append("*.safetensors")
    if missing:
        where = f"the cache ({hub_cache()})" if offline else f"{repo} on {endpoint()}"
        raise PullError(f"{where} lacks {', '.join(missing)}: nothing to import")


def _not_cached(repo: str, revision: str) -> str:
    return (
        f"{repo}@{revision} is not in the cache ({hub_cache()}) and HF_HUB_OFFLINE is set: "
        "pull it once online, or point HF_HOME at a cache that has it"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What the HTTP client under huggingface_hub raises for a failed connection or transfer
    (httpx2, httpx or requests, depending on its version), and OSError (a size mismatch)."""
    found: list[type[BaseException]] = [OSError]
    for module, name in (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    ):
        try:
            found.append(getattr(__import__(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)
