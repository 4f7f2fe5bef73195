"""Shared test setup: which server executable the end-to-end tests start, the client's side
of the protocol that those tests share, and ``serve-model`` as a process on loopback."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types

REPO = Path(__file__).resolve().parent.parent


def copy_of_builtin_model(folder: Path) -> Path:
    """The built-in model's files (weights, config, tokenizer; not its package's code) copied
    to ``folder``: a model folder to write a manifest into."""
    # Here, not at the top: most tests that import this module never load onnxruntime.
    from ghostcomplete.backends.onnx.backend import shipped_model_folder

    shutil.copytree(
        shipped_model_folder(), folder, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return folder


def server_executable() -> str:
    """GHOSTCOMPLETE_SERVER (the installed wheel in `make wheel-e2e`), else this venv's."""
    explicit = os.environ.get("GHOSTCOMPLETE_SERVER")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "ghostcomplete"
    if beside.exists():
        return str(beside)
    found = shutil.which("ghostcomplete")
    if found is None:
        raise RuntimeError("no ghostcomplete executable: run `make test` or pip install -e .")
    return found


def server_can_import(module: str) -> bool:
    """Whether the server's own Python (the wheel's venv in `make wheel-e2e`, which has only
    the core dependencies) can import ``module``: optional extras decide some behaviour."""
    python = Path(server_executable()).parent / "python"
    if not python.exists():
        python = Path(sys.executable)
    found = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, timeout=60, check=False
    )
    return found.returncode == 0


# --- a client's side of the protocol, for the end-to-end tests --------------------------------
def open_document(
    client: Any, where: str | Path, text: str | None = None, language: str = "python"
) -> str:
    """textDocument/didOpen (version 1) of ``text``, or of the file at ``where``; returns the
    document's uri."""
    uri = where.as_uri() if isinstance(where, Path) else where
    if text is None:
        text = Path(where).read_text() if isinstance(where, Path) else ""
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language, 1, text))
    )
    return uri


def request_completion(
    client: Any, uri: str, line: int, character: int, *, automatic: bool = False
) -> Any:
    """textDocument/inlineCompletion at a position, as typing (automatic) or invoked: the
    pending answer, for tests that cancel or race requests."""
    kind = types.InlineCompletionTriggerKind
    return client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(kind.Automatic if automatic else kind.Invoked),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
        )
    )


async def completion_texts(
    client: Any, uri: str, line: int, character: int, *, automatic: bool = False
) -> list[str]:
    """The texts of the items the server suggests at a position."""
    result = await request_completion(client, uri, line, character, automatic=automatic)
    return [item.insert_text for item in result.items] if result else []


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until ``check()`` is truthy; TimeoutError after ``timeout`` seconds."""

    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


class ServeModelProcess:
    """``ghostcomplete serve-model --port 0 ARGS`` until the block ends; ``url`` is where."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def __aenter__(self) -> ServeModelProcess:
        self.process = await asyncio.create_subprocess_exec(
            server_executable(),
            "serve-model",
            "--port",
            "0",
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(self.env or {})},
        )
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 20)).decode()
        assert "listening on http://127.0.0.1:" in line, line
        self.url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        return self

    async def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        assert self.process is not None and self.process.stdout is not None
        self.process.send_signal(signum)
        code = await asyncio.wait_for(self.process.wait(), 10)
        rest = (await self.process.stdout.read()).decode()
        return code, rest

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
