"""`:GhostEdit` in headless Neovim: the Lua client (neovim/try/init.lua, the `make try` config)
sends ghostcomplete.edit to the real server, whose http backend asks a chat server on
loopback; Neovim applies the server's workspace/applyEdit to the buffer itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_fakes import FakeModelServer, Recorded, Reply
from test_neovim_e2e import INIT, SAMPLE, hermetic_env, nvim_binary, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

LOOP_ANSWER = (
    "Sure, here it is with a loop:\n"
    "```python\n"
    "def total_value_cents(self) -> int:\n"
    "    total = 0\n"
    "    for product in self.products.values():\n"
    "        total += product.total_value_cents()\n"
    "    return total\n"
    "```\n"
)


class ChatServer:
    """The fake chat server on its own event loop in a thread (pynvim's calls block)."""

    def __init__(self) -> None:
        self.answer = ""
        self.delay_s = 0.0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = FakeModelServer(self.handle)

    async def handle(self, request: Recorded, reply: Reply) -> None:
        if request.path.endswith("/chat/completions"):
            if self.delay_s and await reply.hang(self.delay_s):
                return  # the server hung up: the edit was cancelled
            message = {"role": "assistant", "content": self.answer}
            await reply.json({"choices": [{"index": 0, "message": message}]})
        else:  # ghost text requests, should any come: no suggestion
            await reply.json({"choices": [{"index": 0, "text": ""}]})

    def chats(self) -> list[Recorded]:
        return [r for r in self.server.requests if r.path.endswith("/chat/completions")]

    def __enter__(self) -> ChatServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


@contextlib.contextmanager
def neovim_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any]
) -> Iterator[Any]:
    """Headless Neovim on a copy of the sample project, the server started with ``settings``."""
    import pynvim

    nvim_path = nvim_binary()
    project = tmp_path / "project"
    shutil.copytree(SAMPLE, project)
    for name, value in hermetic_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GHOSTCOMPLETE_SETTINGS", json.dumps(settings))
    monkeypatch.chdir(project)
    editor = pynvim.attach(
        "child", argv=[nvim_path, "--embed", "--headless", "-u", str(INIT), "inventory.py"]
    )
    try:
        wait_for(
            lambda: editor.exec_lua(
                "return #vim.lsp.get_clients({name = 'ghostcomplete', bufnr = 0}) > 0"
                " and require('ghostcomplete').state().attached"
            ),
            "the client to attach to inventory.py",
            timeout=20,
        )
        yield editor
    finally:
        with contextlib.suppress(EOFError, OSError):
            editor.command("qa!")
        editor.close()


@pytest.fixture
def nvim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chat: ChatServer) -> Iterator[Any]:
    http = {"url": chat.server.base + "/v1", "model": "fake-chat", "stream": False}
    with neovim_with(tmp_path, monkeypatch, {"backend": {"kind": "http", "http": http}}) as editor:
        yield editor


def last_edit(nvim: Any) -> Any:
    return nvim.exec_lua("return require('ghostcomplete.edit').last")


def test_ghost_edit_rewrites_the_visual_lines(nvim: Any, chat: ChatServer) -> None:
    chat.answer = LOOP_ANSWER
    before = nvim.current.buffer[:]
    nvim.command("normal! 17GV18G\x1b")  # select total_value_cents, linewise
    nvim.command("'<,'>GhostEdit use a for loop")
    expected = [
        "    def total_value_cents(self) -> int:",
        "        total = 0",
        "        for product in self.products.values():",
        "            total += product.total_value_cents()",
        "        return total",
    ]
    wait_for(lambda: nvim.current.buffer[16:21] == expected, "the rewritten method")
    after = nvim.current.buffer[:]
    assert after[:16] == before[:16] and after[21:] == before[18:]  # nothing else moved
    wait_for(lambda: last_edit(nvim), "the command's answer")
    assert last_edit(nvim)["applied"] is True
    [request] = chat.chats()
    prompt = request.body["messages"][1]["content"]
    assert "Instruction: use a for loop" in prompt
    assert "<selection>    def total_value_cents(self) -> int:\n" in prompt
    # One change to the buffer: a single undo takes all of it back.
    assert nvim.exec_lua("return vim.bo.modified") is True
    nvim.command("undo")
    assert nvim.current.buffer[:] == before


def test_ghost_edit_on_a_characterwise_selection_asks_for_the_instruction(
    nvim: Any, chat: ChatServer
) -> None:
    chat.answer = "```python\nproduct.sku.upper()\n```"
    line = nvim.current.buffer[11]
    assert line == "        self.products[product.sku] = product"
    start = line.index("product.sku")
    nvim.api.win_set_cursor(0, [12, start])
    nvim.command(f"normal! v{len('product.sku') - 1}l\x1b")
    # No argument: the instruction comes from vim.ui.input (answered here as a user would).
    nvim.exec_lua("vim.ui.input = function(opts, on_confirm) on_confirm('upper-case the key') end")
    nvim.command("'<,'>GhostEdit")
    wait_for(
        lambda: nvim.current.buffer[11] == "        self.products[product.sku.upper()] = product",
        "the edited expression",
    )
    [request] = chat.chats()
    prompt = request.body["messages"][1]["content"]
    assert "Instruction: upper-case the key" in prompt
    assert "The selection:\n```python\nproduct.sku\n```" in prompt


def test_ghost_edit_reports_a_refusal_and_leaves_the_buffer(nvim: Any, chat: ChatServer) -> None:
    chat.answer = "```python\ndef total_value_cents(self) -> int:\n    return sum("  # cut off
    before = nvim.current.buffer[:]
    nvim.command("17,18GhostEdit use a for loop")
    wait_for(lambda: last_edit(nvim), "the command's answer")
    assert last_edit(nvim)["applied"] is False and "cut off" in last_edit(nvim)["message"]
    assert nvim.current.buffer[:] == before


def test_ghost_edit_cancel_stops_the_edit(nvim: Any, chat: ChatServer) -> None:
    chat.answer = LOOP_ANSWER
    chat.delay_s = 3.0
    before = nvim.current.buffer[:]
    nvim.command("17,18GhostEdit use a for loop")
    wait_for(lambda: chat.chats(), "the chat request")
    nvim.command("GhostEditCancel")
    assert "cancelled" in last_edit(nvim)["message"]
    wait_for(lambda: chat.chats()[0].client_closed_early, "the server to stop the model call")
    time.sleep(0.5)  # an edit would have arrived by now
    assert nvim.current.buffer[:] == before
    assert last_edit(nvim)["applied"] is False
    assert nvim.exec_lua("return next(require('ghostcomplete.edit').pending) == nil")


def test_ghost_edit_with_a_local_onnx_instruct_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model server at all: tests/fixtures/onnx/tiny-qwen2-instruct, trained to answer
    with a typed ``add``, rewrites the selected lines."""
    instruct = Path(__file__).parent / "fixtures" / "onnx" / "tiny-qwen2-instruct"
    settings = {"backend": {"kind": "onnx", "onnx": {"path": str(instruct)}}}
    with neovim_with(tmp_path, monkeypatch, settings) as nvim:
        buffer = nvim.current.buffer
        buffer.append(["", "", "def add(a, b):", "    return a + b"])
        count = len(buffer)
        nvim.command(f"normal! {count - 1}GV{count}G\x1b")
        nvim.command("'<,'>GhostEdit add type hints")
        typed = ["def add(a: int, b: int) -> int:", "    return a + b"]
        wait_for(lambda: last_edit(nvim), "the command's answer", timeout=20)
        assert buffer[count - 2 :] == typed, (last_edit(nvim), buffer[count - 4 :])
        assert last_edit(nvim)["applied"] is True
