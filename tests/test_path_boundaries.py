"""Links and relative imports cannot reach past content exclusion or out of the workspace:
a file is excluded when its own path or its real path is, and imports resolve only to files
whose real path is inside a workspace folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ghostcomplete.context.exclusion import ContentExclusion
from ghostcomplete.context.imports import DefinitionFinder, ImportedName, resolve_module
from ghostcomplete.ranker.retrieval import imported_definitions

pytestmark = pytest.mark.timeout(20)

SECRET = "SERVICE_HOST = 'leakmarker-in-dotenv'\n"


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / ".env").write_text(SECRET)
    (root / "pkg" / "plain.py").write_text("SERVICE_PORT = 8080\n")
    return root


def test_a_link_to_an_excluded_file_is_excluded(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    link = root / "pkg" / "settings_link.py"
    link.symlink_to(root / ".env")
    rules = ContentExclusion(roots=[root], respect_gitignore=False)
    reason = rules.reason(link.as_uri())
    assert reason == "settings_link.py links to .env, which matches an exclusion pattern"
    assert rules.reason((root / "pkg" / "plain.py").as_uri()) is None


def test_a_link_to_an_allowed_file_is_allowed(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    link = root / "alias.py"
    link.symlink_to(root / "pkg" / "plain.py")
    assert ContentExclusion(roots=[root]).reason(link.as_uri()) is None


def test_links_through_folders_and_outside_the_workspace(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    (root / "secrets").mkdir()
    (root / "secrets" / "db.py").write_text("PASSWORD = 'x'\n")
    (root / "pkg" / "config").symlink_to(root / "secrets")
    home_ssh = tmp_path / "home" / ".ssh"
    home_ssh.mkdir(parents=True)
    (home_ssh / "id_ed25519").write_text("key\n")
    (root / "pkg" / "key.py").symlink_to(home_ssh / "id_ed25519")
    rules = ContentExclusion(roots=[root], respect_gitignore=False)
    assert rules.reason((root / "pkg" / "config" / "db.py").as_uri()) is not None
    assert rules.reason((root / "pkg" / "key.py").as_uri()) is not None


def test_a_link_to_a_gitignored_file_is_excluded(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("local_settings.py\n")
    (root / "local_settings.py").write_text("TOKEN = 'x'\n")
    (root / "pkg" / "shared.py").symlink_to(root / "local_settings.py")
    rules = ContentExclusion((), respect_gitignore=True, roots=[root])
    assert "is ignored by .gitignore" in (rules.reason((root / "pkg" / "shared.py").as_uri()) or "")


def test_a_link_changed_later_is_decided_again(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    link = root / "pkg" / "settings_link.py"
    link.symlink_to(root / "pkg" / "plain.py")
    rules = ContentExclusion(roots=[root], respect_gitignore=False)
    assert rules.reason(link.as_uri()) is None
    link.unlink()
    link.symlink_to(root / ".env")
    assert rules.reason(link.as_uri()) is not None


def test_a_symlinked_workspace_folder_keeps_its_relative_patterns(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("x = 1\n")
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    for folder in (root, alias):
        rules = ContentExclusion(["/build/"], respect_gitignore=False, roots=[folder])
        assert rules.reason((alias / "build" / "out.py").as_uri()) is not None
        assert rules.reason((root / "build" / "out.py").as_uri()) is not None
        assert rules.reason((alias / "pkg" / "plain.py").as_uri()) is None


def test_relative_imports_stay_inside_the_workspace(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    (tmp_path / "outside.py").write_text("OUTSIDE = 1\n")
    importer = root / "pkg" / "mod.py"
    climbing = ImportedName("OUTSIDE", "outside", "OUTSIDE", 3)
    assert resolve_module(importer, climbing, "python", (root,)) is None
    inside = ImportedName("SERVICE_PORT", "plain", "SERVICE_PORT", 1)
    assert resolve_module(importer, inside, "python", (root,)) == root / "pkg" / "plain.py"


def test_js_imports_stay_inside_the_workspace(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    (tmp_path / "outside.ts").write_text("export const OUTSIDE = 1;\n")
    importer = root / "pkg" / "page.ts"
    climbing = ImportedName("OUTSIDE", "../../outside", "OUTSIDE")
    assert resolve_module(importer, climbing, "typescript", (root,)) is None


def test_links_out_of_the_workspace_do_not_resolve(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.py").write_text("TOKEN = 1\n")
    (root / "pkg" / "private.py").symlink_to(elsewhere / "private.py")
    (root / "vendored").symlink_to(elsewhere, target_is_directory=True)
    importer = root / "pkg" / "mod.py"
    linked = ImportedName("TOKEN", "private", "TOKEN", 1)
    assert resolve_module(importer, linked, "python", (root,)) is None
    through_folder = ImportedName("TOKEN", "vendored.private", "TOKEN")
    assert resolve_module(root / "app.py", through_folder, "python", (root,)) is None


def test_without_workspace_folders_imports_stay_beside_the_file(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    (tmp_path / "outside.py").write_text("OUTSIDE = 1\n")
    importer = root / "pkg" / "mod.py"
    assert resolve_module(importer, ImportedName("x", "outside", "x", 3), "python", ()) is None
    beside = ImportedName("SERVICE_PORT", "plain", "SERVICE_PORT")
    assert resolve_module(importer, beside, "python", ()) == root / "pkg" / "plain.py"


def test_imported_definitions_skip_a_link_to_dotenv(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    (root / "pkg" / "settings_link.py").symlink_to(root / ".env")
    importer = root / "pkg" / "mod.py"
    text = (
        "from .settings_link import SERVICE_HOST\nfrom .plain import SERVICE_PORT\n\n"
        "connect(SERVICE_HOST, SERVICE_PORT, "
    )
    found = imported_definitions(
        importer.as_uri(),
        "python",
        text,
        text,
        DefinitionFinder(),
        (root,),
        ContentExclusion(roots=[root]),
        4,
    )
    assert [snippet.text for snippet in found] == ["SERVICE_PORT = 8080"]
