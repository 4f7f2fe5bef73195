"""`make try` on a real terminal: Neovim in tmux shows ghost text on the sample project.

Runs the command the Makefile's `try` target runs (directly, so the venv is not re-installed)
on a temporary copy of examples/sample_project, follows the guided steps that the try config
shows (neovim/try/init.lua) like a user, with `tmux send-keys`, and reads the screen with
`tmux capture-pane` until each suggestion is drawn. Every suggestion the steps tell the user
to take must be the code they want: the first minute shows the default backend at its best.
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

# The guided steps: below the "# Try:" comment, type TYPED; Tab takes the signature (copied
# from add_supplier), Tab again the body on the next line; then nothing more is offered (the
# body is not suggested a second time).
TYPED = "def update_supplier("
HEADER = "    def update_supplier(self, supplier: Supplier) -> None:"
BODY = "        self.suppliers[supplier.name] = supplier"


def tool(name: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    if found is None:
        pytest.skip(f"{name} not found")
    return found


def test_make_try_guided_steps_write_the_right_method(tmp_path: Path) -> None:
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

    def wait_lines(lines: list[str], timeout: float) -> list[str]:
        """Wait until ``lines`` are on screen one below the other; the screen's lines."""
        deadline = time.monotonic() + timeout
        while True:
            shown = [line.rstrip() for line in screen().split("\n")]
            for index in range(len(shown) - len(lines) + 1):
                if shown[index : index + len(lines)] == lines:
                    return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{lines!r} not on screen after {timeout:.0f} s:\n{shown}")
            time.sleep(0.1)

    try:
        run("-f", "/dev/null", "new-session", "-d", "-s", "try", "-x", "160", "-y", "50", command)
        wait_screen("# Try:", timeout=20)  # inventory.py is on screen
        wait_screen(f'"{TYPED}"', timeout=20)  # the guided steps name what the test types
        wait_screen("ghost:", timeout=20)  # the statusline: the client has attached
        run("send-keys", "-t", "try", "G", "o")
        for key in TYPED:
            run("send-keys", "-t", "try", "-l", key)
            time.sleep(0.03)
        # The ghost text, drawn inline right after what was typed.
        wait_screen(HEADER, timeout=20)
        run("send-keys", "-t", "try", "Tab")
        # The body, drawn below the accepted signature.
        wait_lines([HEADER, BODY], timeout=20)
        run("send-keys", "-t", "try", "Tab")
        wait_lines([HEADER, BODY], timeout=20)
        time.sleep(1.5)  # long enough for a further suggestion to be asked for and drawn
        shown = [line.rstrip() for line in screen().split("\n")]
        below = shown[shown.index(HEADER) + 2]
        assert below.strip() != BODY.strip(), f"the body is suggested again:\n{shown}"
        run("send-keys", "-t", "try", "Escape")
        run("send-keys", "-t", "try", "-l", ":w")
        run("send-keys", "-t", "try", "Enter")
        expected = (SAMPLE / "inventory.py").read_text() + f"{HEADER}\n{BODY}\n"
        deadline = time.monotonic() + 10
        while (project / "inventory.py").read_text() != expected:
            if time.monotonic() > deadline:
                saved = (project / "inventory.py").read_text()
                raise AssertionError(f"saved inventory.py ends with:\n{saved[-300:]}")
            time.sleep(0.1)
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], capture_output=True, timeout=10)
