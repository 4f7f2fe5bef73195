"""The VS Code extension's settings reach the real server intact.

Node loads the extension's bundle (vscode-extension/out/extension.js, what the .vsix ships)
and calls its exported buildInitializationOptions on a configuration built the way VS Code
builds one: the manifest's defaults with the user's values on top. The server is then started
with exactly those initializationOptions (and answers workspace/configuration with the same
tree, as the extension's middleware does) and must take them without a complaint. VS Code
itself cannot be downloaded here; vscode-extension/test/client.test.ts runs the whole
extension against the server with a fake of the `vscode` module.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import REPO, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

EXTENSION = REPO / "vscode-extension"

# vscode-extension/test/print-settings.cjs loads the bundle under a stand-in for the `vscode`
# module whose getConfiguration gives the contributed defaults with the user's values on top.
LOADER = EXTENSION / "test" / "print-settings.cjs"


def extension_view(user: dict[str, Any]) -> dict[str, Any]:
    """What the bundled extension makes of these user settings (dotted keys)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (the VS Code extension needs Node 20)")
    if not (EXTENSION / "node_modules").is_dir():
        pytest.skip("vscode-extension/node_modules is missing: run `make vscode-check`")
    # Build the bundle from the current sources (esbuild: a fraction of a second).
    subprocess.run([node, "esbuild.mjs"], cwd=EXTENSION, check=True, timeout=60)
    done = subprocess.run(
        [node, str(LOADER), str(EXTENSION / "out" / "extension.js"), json.dumps(user), str(REPO)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout)


USER_SETTINGS: dict[str, Any] = {
    "ghostcomplete.server.command": ["sh", "-c", "client-only: never sent to the server"],
    "ghostcomplete.server.verbose": True,
    "ghostcomplete.trace.server": "messages",
    "ghostcomplete.completion.disabledLanguages": ["markdown"],
    "ghostcomplete.completion.maxBlockLines": 7,
    "ghostcomplete.completion.debounce": "fixed",
    "ghostcomplete.completion.debounceMs": 0,
    "ghostcomplete.backend.http.apiKeyEnv": "GHOSTCOMPLETE_TEST_KEY",
    "ghostcomplete.telemetry.mode": "off",
}


def test_the_bundle_builds_the_server_command_and_options(tmp_path):
    fake_server = tmp_path / "bin" / "ghostcomplete"
    fake_server.parent.mkdir()
    fake_server.write_text("#!/bin/sh\n")
    fake_server.chmod(0o755)
    view = extension_view({**USER_SETTINGS, "ghostcomplete.server.command": str(fake_server)})
    assert view["server"] == {"command": str(fake_server), "args": ["serve", "-v"]}
    options = view["initializationOptions"]
    assert "server" not in options and "trace" not in options
    assert options["completion"]["maxBlockLines"] == 7
    assert options["backend"]["kind"] == "auto"  # a default, filled in from the manifest
    # With no command set, the workspace folder's .venv (this repository's) is found.
    default = extension_view({})
    if (REPO / ".venv" / "bin" / "ghostcomplete").exists():
        assert default["server"]["command"] == str(REPO / ".venv" / "bin" / "ghostcomplete")
    assert default["server"]["args"] == ["serve"]


VIEW: dict[str, Any] = {}


def field(status: Any, name: str) -> Any:
    """A didChangeStatus payload's field (pygls hands over a dict or a namedtuple)."""
    return status[name] if isinstance(status, dict) else getattr(status, name)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def client(lsp_client: LanguageClient):
    options = VIEW["initializationOptions"]
    lsp_client.status_messages: list[Any] = []  # type: ignore[attr-defined]
    # workspace/configuration is answered with the same tree, as the extension's middleware does.
    lsp_client.set_configuration({"ghostcomplete": options})

    @lsp_client.feature("ghostcomplete/didChangeStatus")
    def on_status(params: Any) -> None:
        lsp_client.status_messages.append(params)  # type: ignore[attr-defined]

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=REPO.as_uri(),
            initialization_options=options,
        )
    )
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(autouse=True, scope="module")
def _view():
    VIEW.update(extension_view(USER_SETTINGS))


async def test_the_server_takes_the_extensions_settings_without_complaint(client: LanguageClient):
    await asyncio.sleep(0.3)  # the server pulls workspace/configuration after initialized
    status = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.status", [])
    )
    assert status["kind"] == "Normal", status
    assert status["backend"] == "auto"
    # No model is installed where the tests run (conftest.py): auto resolves to the lookup.
    assert status["chosen"].startswith("auto: lookup"), status["chosen"]
    assert client.messages == []
    assert all(field(s, "kind") == "Normal" for s in client.status_messages)  # type: ignore[attr-defined]

    # The extension's didChangeConfiguration push: the same tree under "ghostcomplete".
    pushed = json.loads(json.dumps(VIEW["initializationOptions"]))
    pushed["completion"]["maxBlockLines"] = 0  # out of range: the server must name it
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"ghostcomplete": pushed})
    )
    for _ in range(100):
        if any(field(s, "kind") == "Warning" for s in client.status_messages):  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    warning = [s for s in client.status_messages if field(s, "kind") == "Warning"]  # type: ignore[attr-defined]
    assert warning and "completion.maxBlockLines" in field(warning[0], "message")
