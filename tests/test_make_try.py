"""`make try` on a real terminal: Neovim in tmux shows ghost text on the sample project.

Runs the command the Makefile's `try` target runs (directly, so the venv is not re-installed)
on a temporary copy of examples/sample_project, types like a user with `tmux send-keys` and
reads the screen with `tmux capture-pane` until the suggestion is drawn.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

REPO = Path(__file__).resolve().parents[1]
INIT = REPO / "neovim" / "try" / "init.lua"
SAMPLE = REPO / "examples" / "sample_project"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    if found is None:
        pytest.skip(f"{name} not found")
    return found


def test_make_try_shows_ghost_text_in_a_terminal(tmp_path: Path) -> None:
    tmux, nvim = tool("tmux"), tool("nvim")
    project = tmp_path / "sample_project"
    shutil.copytree(SAMPLE, project)
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[name] = str(tmp_path / name.lower())
    if os.environ.get("GHOSTCOMPLETE_SERVER"):  # e.g. the installed wheel (make wheel-e2e)
        env["GHOSTCOMPLETE_SERVER"] = os.environ["GHOSTCOMPLETE_SERVER"]
    # What `make try` runs: cd examples/sample_project && PATH=.venv/bin:$PATH nvim -u ...
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    command = (
        f"cd {shlex.quote(str(project))} && {exports} "
        f"exec {shlex.quote(nvim)} -u {shlex.quote(str(INIT))} inventory.py"
    )
    socket = f"ghostcomplete-try-{uuid.uuid4().hex[:12]}"

    def run(*args: str) -> str:
        done = subprocess.run(
            [tmux, "-L", socket, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout

    def screen() -> str:
        return run("capture-pane", "-p", "-t", "try")

    def wait_screen(text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            shown = screen()
            if text in shown:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on screen after {timeout:.0f} s:\n{shown}")
            time.sleep(0.1)

    try:
        run("-f", "/dev/null", "new-session", "-d", "-s", "try", "-x", "160", "-y", "50", command)
        wait_screen("# Try:", timeout=20)  # inventory.py is on screen
        wait_screen("ghost:", timeout=20)  # the statusline: the client has attached
        run("send-keys", "-t", "try", "G", "o")
        for key in "def is_in_stock":
            run("send-keys", "-t", "try", "-l", key)
            time.sleep(0.03)
        # The ghost text, drawn inline right after what was typed.
        wait_screen("    def is_in_stock(self) -> bool:", timeout=20)
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], capture_output=True, timeout=10)
