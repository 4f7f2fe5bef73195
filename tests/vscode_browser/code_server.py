"""A real VS Code for the browser tests: code-server with the built .vsix, driven by Debian's
chromium through playwright-core (driver.mjs), all in one process group per test module.

`make vscode-browser` installs code-server and playwright-core (package-lock.json here) and
builds the .vsix; this module only runs them.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CODE_SERVER = HERE / "node_modules" / ".bin" / "code-server"
DRIVER = HERE / "driver.mjs"
VSIX = REPO / "dist" / "ghostcomplete-0.1.0.vsix"
EXTENSION_ID = "ghostcomplete.ghostcomplete"
STATUS_SELECTOR = f"[id='{EXTENSION_ID}.ghostcomplete.status']"
# VS Code draws inline suggestions with these classes (the rest of a line; added lines).
GHOST_SELECTOR = ".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text"


def missing_install() -> str | None:
    """What `make vscode-browser` has not put in place yet, or None."""
    for path in (CODE_SERVER, HERE / "node_modules" / "playwright-core", VSIX):
        if not path.exists():
            return f"{path} is missing: run `make vscode-browser`"
    if not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
        return "/usr/bin/chromium is missing: run `make vscode-browser` (as root: apt-get)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DriverError(RuntimeError):
    pass


class Browser:
    """driver.mjs: each call sends the body of an async function of (page, context)."""

    def __init__(self, url: str, env: dict[str, str], log: Path) -> None:
        self._log = log.open("w")
        self.process = subprocess.Popen(
            ["node", str(DRIVER), url],
            cwd=HERE,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._answer(0, timeout=60)
        if ready.get("value") != "ready":
            raise DriverError(f"driver did not start: {ready}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self._answers.put(json.loads(line))
        self._answers.put(None)

    def _answer(self, id_: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DriverError(f"no answer from the browser in {timeout} s")
            try:
                answer = self._answers.get(timeout=left)
            except queue.Empty:
                continue
            if answer is None:
                raise DriverError("the browser driver exited (see its log)")
            if answer.get("id") == id_:
                return answer

    def js(self, body: str, timeout: float = 30) -> Any:
        self._next += 1
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"id": self._next, "js": body}) + "\n")
        self.process.stdin.flush()
        answer = self._answer(self._next, timeout)
        if not answer["ok"]:
            raise DriverError(answer["error"])
        return answer["value"]

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


class Editor:
    """code-server on a free loopback port, its extension installed from the .vsix, and one
    browser tab on ``folder``.

    code-server's workbench is a remote window: it drops machine-scoped settings (such as
    ``ghostcomplete.server.command``, machine-overridable) from the user settings once their
    scope is known, and reads them from the remote machine's settings instead, which
    code-server keeps in ``<user-data-dir>/Machine/settings.json``. Those go in
    ``machine_settings``."""

    def __init__(
        self,
        root: Path,
        folder: Path,
        settings: dict[str, Any],
        machine_settings: dict[str, Any],
    ) -> None:
        self.root = root
        self.folder = folder
        self.data = root / "data"
        self.extensions = root / "extensions"
        user = self.data / "User"
        user.mkdir(parents=True)
        self.settings_file = user / "settings.json"
        self.settings = dict(settings)
        self.settings_file.write_text(json.dumps(settings, indent=2))
        machine = self.data / "Machine"
        machine.mkdir()
        (machine / "settings.json").write_text(json.dumps(machine_settings, indent=2))
        self.env = dict(os.environ)
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
            path = root / name.lower()
            path.mkdir()
            self.env[name] = str(path)
        self.env["HOME"] = str(root / "home")
        (root / "home").mkdir()
        self.common = [
            "--user-data-dir",
            str(self.data),
            "--extensions-dir",
            str(self.extensions),
        ]
        subprocess.run(
            [str(CODE_SERVER), *self.common, "--install-extension", str(VSIX)],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.port = free_port()
        self.server_log = (root / "code-server.log").open("w")
        # Its own process group: closing the tab leaves the extension host and the
        # `ghostcomplete serve` it started alive, so the whole group is stopped at the end.
        self.process = subprocess.Popen(
            [
                str(CODE_SERVER),
                *self.common,
                "--auth",
                "none",
                "--bind-addr",
                f"127.0.0.1:{self.port}",
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                str(folder),
            ],
            env=self.env,
            stdout=self.server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.group = self.process.pid
        self.browser: Browser | None = None
        try:
            self._wait_healthy(60)
            url = f"http://127.0.0.1:{self.port}/?folder={folder}"
            self.browser = Browser(url, self.env, root / "driver.log")
            # The workbench is up and the server running once the status item says ready.
            self.wait_status("ready", timeout=70)
            self._warm_up()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"code-server exited; see {self.root / 'code-server.log'}")
            health = f"http://127.0.0.1:{self.port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2):
                return
            time.sleep(0.2)
        raise RuntimeError(f"code-server not listening after {timeout} s")

    def js(self, body: str, timeout: float = 30) -> Any:
        assert self.browser is not None
        return self.browser.js(body, timeout)

    def group_members(self) -> list[int]:
        """Live processes in code-server's process group (zombies excluded)."""
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.group and fields[0] != "Z":
                members.append(int(entry.name))
        return members

    def stop(self) -> None:
        if self.browser is not None:
            self.browser.close()
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.group, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.process.poll()
                if not self.group_members():
                    break
                time.sleep(0.1)
            if not self.group_members():
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.server_log.close()

    def _warm_up(self) -> None:
        """The first file opened after startup sometimes gets no inline suggestion at all on
        a loaded machine: ask for one in a throwaway file until one shows."""
        (self.folder / "warm_up.py").write_text("def warm_up(value):\n    return value\n\n")
        self.open_file("warm_up.py")
        self.press("Control+End")
        self.type("def warm")
        for _ in range(5):
            with contextlib.suppress(DriverError):
                self.ghost_text(timeout_ms=4000)
                break
            self.press("Escape", "Backspace")
            self.type("m")
        self.press("Escape")
        self.command("View: Revert and Close Editor")
        (self.folder / "warm_up.py").unlink()

    # --- what the user does -----------------------------------------------------------------
    def press(self, *keys: str) -> None:
        for key in keys:
            self.js(f"await page.keyboard.press({json.dumps(key)});")

    def type(self, text: str) -> None:
        self.js(f"await page.keyboard.type({json.dumps(text)}, {{ delay: 20 }});")

    def command(self, title: str) -> None:
        """Runs a command from the command palette by its full title. The row is clicked, not
        taken with Enter: the palette lists recently used commands first, so the top row for
        "View: Close Editor" can be "View: Close All Editors"."""
        query = json.dumps("> " + title)
        # A title that asks for more input ends in an ellipsis, which callers may leave out.
        exact = json.dumps(f"^{re.escape(title.rstrip('.…'))}(\\.\\.\\.|…)?$")
        self.js(
            f"""
            const input = page.locator(".quick-input-widget input");
            // The palette can close again as it opens (the editor taking the focus back
            // while it settles): the input is then hidden before it is filled. Open it again.
            for (let attempt = 1; ; attempt++) {{
              await page.keyboard.press("F1");
              try {{
                await input.waitFor({{ state: "visible" }});
                await input.fill({query}, {{ timeout: 5000 }});
                break;
              }} catch (error) {{
                if (attempt >= 3) throw error;
                await page.keyboard.press("Escape");
              }}
            }}
            const label = page.locator(".label-name", {{ hasText: new RegExp({exact}) }});
            await page.locator(".quick-input-list .monaco-list-row")
              .filter({{ has: label }}).first().click();
            // The palette is gone, or its input reused by the command (an input box).
            await page.waitForFunction((query) => {{
              const box = document.querySelector(".quick-input-widget input");
              return box === null || box.offsetParent === null || box.value !== query;
            }}, {query});
            """
        )

    def open_file(self, name: str) -> None:
        exact = json.dumps(f"^{re.escape(Path(name).name)}$")
        self.js(
            f"""
            await page.keyboard.press("Control+P");
            const input = page.locator(".quick-input-widget input");
            await input.waitFor({{ state: "visible" }});
            await input.fill({json.dumps(str(self.folder / name))});
            // The row for this file, clicked: Enter takes the top row, which can still be one
            // of the list's previous contents. A row shows the file's name, its folder apart.
            const label = page.locator(".label-name", {{ hasText: new RegExp({exact}) }});
            await page.locator(".quick-input-list .monaco-list-row")
              .filter({{ has: label }}).first().click();
            await page.locator(".tab.active", {{ hasText: {json.dumps(Path(name).name)} }})
              .waitFor();
            await page.locator(".monaco-editor textarea").first().focus();
            """
        )

    def ghost_text(self, timeout_ms: int = 8_000) -> str:
        """The ghost text the editor shows (waits for it), as the user reads it. On a loaded
        machine VS Code sometimes asks for no suggestion after a keystroke; then the user's
        shortcut (Alt+\\, Trigger Inline Suggestion) asks once more. VS Code draws spaces
        as no-break spaces; they are read as spaces."""
        return str(
            self.js(
                f"""
                const ghost = page.locator({json.dumps(GHOST_SELECTOR)});
                try {{
                  await ghost.first().waitFor({{ state: "visible", timeout: {timeout_ms} }});
                }} catch {{
                  await page.keyboard.press("Alt+Backslash");
                  await ghost.first().waitFor({{ state: "visible", timeout: {timeout_ms} }});
                }}
                return (await ghost.allTextContents()).join("");
                """,
                timeout=2 * timeout_ms / 1000 + 10,
            )
        ).replace("\xa0", " ")

    def ghost_count(self) -> int:
        return int(self.js(f"return await page.locator({json.dumps(GHOST_SELECTOR)}).count();"))

    def status_item(self) -> dict[str, str]:
        """The ghostcomplete status bar item: its aria label and its icon classes."""
        return dict(
            self.js(
                f"""
                const item = page.locator({json.dumps(STATUS_SELECTOR)});
                await item.waitFor({{ state: "attached" }});
                return {{
                  label: (await item.getAttribute("aria-label")) ?? "",
                  icons: await item.locator(".codicon").evaluateAll(
                    (nodes) => nodes.map((node) => node.className).join(" ")),
                }};
                """
            )
        )

    def wait_status(self, summary: str, timeout: float = 20) -> dict[str, str]:
        """Waits until the status item's label says ``ghostcomplete: <summary>`` (or
        ``ghostcomplete <summary>`` for errors and warnings)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.status_item()
            except DriverError:
                item = {"label": "", "icons": ""}
            label = item["label"]
            if f"ghostcomplete: {summary}" in label or f"ghostcomplete {summary}" in label:
                return item
            if time.monotonic() > deadline:
                raise AssertionError(f"status bar never said {summary!r}; last: {label!r}")
            time.sleep(0.1)

    def change_settings(self, changes: dict[str, Any]) -> None:
        """Changes user settings as a user does: Preferences: Open User Settings (JSON), the
        new text in that editor, save. (VS Code here does not notice the file written from
        outside.) A value of None removes the setting."""
        for key, value in changes.items():
            if value is None:
                self.settings.pop(key, None)
            else:
                self.settings[key] = value
        text = json.dumps(self.settings)
        self.press("Escape")
        self.command("Preferences: Open User Settings (JSON)")
        self.js(
            f"""
            await page.locator(".tab.active", {{ hasText: "settings.json" }}).waitFor();
            const group = page.locator(".editor-group-container.active");
            await group.locator(".monaco-editor textarea").first().focus();
            await page.keyboard.press("Control+A");
            await page.keyboard.insertText({json.dumps(text)});
            // What the JSON editor closed by itself after the inserted text.
            await page.keyboard.press("Shift+Control+End");
            await page.keyboard.press("Delete");
            await page.keyboard.press("Control+S");
            // Saved: an unchanged text is dirty after the insert, and closing it would ask.
            await page.locator(".tab.active:not(.dirty)", {{ hasText: "settings.json" }})
              .waitFor();
            """
        )
        deadline = time.monotonic() + 15
        while json.loads(self.settings_file.read_text() or "{}") != self.settings:
            if time.monotonic() > deadline:
                raise AssertionError(f"settings.json was not saved: {self.settings_file}")
            time.sleep(0.1)
        self.command("View: Close Editor")

    def close_all_editors(self) -> None:
        """Closes every editor tab, dropping unsaved changes (closing a changed file would
        ask what to do with them)."""
        self.press("Escape")
        for _ in range(20):
            if not self.js("return await page.locator('.tabs-container .tab').count();"):
                return
            self.command("View: Revert and Close Editor")
        raise AssertionError("editor tabs are left after closing each of them")

    def server_pids(self) -> list[int]:
        """The `ghostcomplete serve` processes in code-server's process group."""
        pids = []
        for pid in self.group_members():
            try:
                argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and any(arg.endswith(b"ghostcomplete") for arg in argv):
                pids.append(pid)
        return pids

    def notification_texts(self) -> list[str]:
        return list(
            self.js(
                "return await page.locator('.notifications-toasts .notification-toast')"
                ".allInnerTexts();"
            )
        )

    def screenshot(self, path: Path, clip_to_editor: bool = False) -> None:
        selector = ".part.editor" if clip_to_editor else "body"
        target = json.dumps(str(path))
        self.js(f"await page.locator({json.dumps(selector)}).screenshot({{ path: {target} }});")

    def extension_logs(self) -> Iterator[Path]:
        """The extension's output channels as VS Code wrote them to disk."""
        yield from sorted((self.data / "logs").rglob("*ghostcomplete*.log"))
