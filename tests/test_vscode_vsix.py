"""The .vsix holds everything the extension needs to start the server, and nothing else.

Packs the extension offline with the same script as `make vsix` (into a temporary folder),
then reads the archive: the manifest is the source manifest, the bundle is there, and the
bundle, loaded by node, requires nothing but Node's own modules and `vscode` (which VS Code
provides): vscode-languageclient and its dependencies are inside it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from support import REPO

EXTENSION = REPO / "vscode-extension"

# Loads the packed bundle with every require() recorded; prints the modules it asked for.
RECORD_REQUIRES = r"""
const Module = require("module");
const seen = new Set();
const load = Module._load;
class Inert {}
const fake = new Proxy({}, { get: () => Inert });
Module._load = function (request, parent, ...rest) {
  if (parent && parent.filename === process.argv[1]) seen.add(request);
  return request === "vscode" ? fake : load.call(this, request, parent, ...rest);
};
const extension = require(process.argv[1]);
const report = { requires: [...seen].sort(), exports: Object.keys(extension) };
process.stdout.write(JSON.stringify(report));
"""


@pytest.fixture(scope="module")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the VS Code extension needs Node 20)")
    if not (EXTENSION / "node_modules").is_dir():
        pytest.skip("vscode-extension/node_modules is missing: run `make vscode-check`")
    out = tmp_path_factory.mktemp("vsix") / "ghostcomplete.vsix"
    subprocess.run(
        [node, "package.mjs", str(out)],
        cwd=EXTENSION,
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,  # vsce must never wait at a prompt
        capture_output=True,
    )
    return out


def test_contents(vsix: Path):
    with zipfile.ZipFile(vsix) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
    assert names == [
        "[Content_Types].xml",
        "extension.vsixmanifest",
        "extension/LICENSE.txt",
        "extension/out/extension.js",
        "extension/package.json",
        "extension/readme.md",
    ]
    source = json.loads((EXTENSION / "package.json").read_text())
    for key in ("name", "version", "main", "engines", "activationEvents", "contributes"):
        assert manifest[key] == source[key], key


def test_the_bundle_needs_only_node_and_vscode(vsix: Path, tmp_path: Path):
    with zipfile.ZipFile(vsix) as archive:
        archive.extract("extension/out/extension.js", tmp_path)
    bundle = tmp_path / "extension" / "out" / "extension.js"
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "-e", RECORD_REQUIRES, str(bundle)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,  # nowhere near a node_modules
    )
    loaded = json.loads(done.stdout)
    builtins = json.loads(
        subprocess.run(
            [node, "-p", "JSON.stringify(require('module').builtinModules)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    outside = [
        name
        for name in loaded["requires"]
        if name != "vscode" and name.removeprefix("node:") not in builtins
    ]
    assert outside == []
    assert "vscode" in loaded["requires"]
    assert {"activate", "deactivate"} <= set(loaded["exports"])
