"""The real server with ``backend.kind = "onnx"``: ghost text from the built-in model, and a
broken model file giving one message and an Error status while the server keeps answering."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import completion_texts, eventually, open_document, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

TINY = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama"
TEXT = "import numpy as np\n\n\ndef mean(values):\n    return np.\n"
LINE, CHARACTER = 4, len("    return np.")


async def start(client: LanguageClient, onnx: dict[str, Any], root: Path | None = None) -> None:
    client.statuses: list[Any] = []  # type: ignore[attr-defined]

    @client.feature("ghostcomplete/didChangeStatus")
    def on_status(params: Any) -> None:
        kind = params["kind"] if isinstance(params, dict) else params.kind
        client.statuses.append(kind)  # type: ignore[attr-defined]

    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=root.as_uri() if root else None,
            # A generous deadline: the greedy candidate of this small model is often empty and
            # the sampled ones are drawn while time allows, so a loaded CI machine must not
            # turn this into a race.
            initialization_options={
                "backend": {"kind": "onnx", "onnx": onnx},
                "completion": {"timeoutMs": 10000},
            },
        )
    )


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def builtin(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    # A workspace folder of a fixed name: the prompt names the file "stats.py", the same on every
    # run. (Named by its absolute path, the prompt changed with pytest's temporary folder and
    # the small model's answer with it: an empty one under pytest-40.)
    root = tmp_path_factory.mktemp("onnx-e2e-workspace", numbered=False)
    lsp_client.root = root  # type: ignore[attr-defined]
    await start(lsp_client, {"threads": 1}, root)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def broken(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("broken-model")
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(TINY / name, folder / name)
    (folder / "model.onnx").write_bytes(b"\x08\x07 this is not an onnx file" * 50)
    await start(lsp_client, {"path": str(folder)})
    yield
    await lsp_client.shutdown_session()


async def test_ghost_text_from_the_builtin_model(builtin: LanguageClient):
    root: Path = builtin.root  # type: ignore[attr-defined]
    uri = open_document(builtin, (root / "stats.py").as_uri(), TEXT)
    texts = await completion_texts(builtin, uri, LINE, CHARACTER)
    assert texts and texts[0].strip(), texts
    # One line: the rest of this one, or (when the model ends this line) the next line.
    assert texts[0].lstrip("\n").count("\n") == 0 and texts[0].count("\n") <= 1
    assert not [m for m in builtin.messages if m.type == types.MessageType.Error]


async def test_broken_model_one_message_error_status_server_alive(
    broken: LanguageClient, tmp_path: Path
):
    uri = open_document(broken, (tmp_path / "stats.py").as_uri(), TEXT)
    assert await completion_texts(broken, uri, LINE, CHARACTER) == []
    assert await completion_texts(broken, uri, LINE, CHARACTER) == []
    statuses = broken.statuses  # type: ignore[attr-defined]
    await eventually(lambda: "Error" in statuses)
    errors = [m for m in broken.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1, errors
    assert "cannot load" in errors[0].message and "model.onnx" in errors[0].message
    status = await broken.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.status", [])
    )
    assert status["kind"] == "Error"
