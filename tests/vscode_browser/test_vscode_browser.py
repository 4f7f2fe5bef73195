"""The extension in a real VS Code: code-server 4.100.3 (VS Code 1.100.3) with the .vsix that
`make vsix` builds, in Debian's chromium. Each test checks what the user sees (the DOM) and,
where it matters, what reached the server or the disk. One code-server serves the module.

Run by `make vscode-browser` (part of `make test`), which installs everything first.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from code_server import GHOST_SELECTOR, REPO, Editor, free_port, missing_install
from loopback_model import LoopbackModel
from support import server_executable

pytestmark = [pytest.mark.vscode_browser, pytest.mark.timeout(120)]

ARTIFACTS = REPO / "build" / "vscode-browser"

SHOP = """\
class Shop:
    def __init__(self):
        self.suppliers = {}
        self.customers = {}

    def add_supplier(self, supplier):
        self.suppliers[supplier.name] = supplier

    def add_customer(self, customer):
        self.customers[customer.name] = customer

    def remove_supplier(self, supplier):
        del self.suppliers[supplier.name]

    def remove_customer(self, customer):
        del self
"""


# The README's picture (docs/ghost-text.png): `clear` empties what `__init__` fills, and after
# its first line the lookup backend proposes the second, the line a human would write next.
SHOP_CLEAR = (
    SHOP.replace("del self\n", "del self.customers[customer.name]\n")
    + "\n    def clear(self):\n        self.suppliers = {}\n"
)
CLEAR_SUGGESTION = "self.customers = {}"


def wait_until(check: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Editor]:
    missing = missing_install()
    if missing is not None:
        pytest.fail(missing)
    root = tmp_path_factory.mktemp("vscode-browser")
    folder = root / "project"
    folder.mkdir()
    settings = {
        "ghostcomplete.server.verbose": True,
        "ghostcomplete.telemetry.path": str(root / "telemetry.sqlite3"),
        "ghostcomplete.completion.debounce": "fixed",
        "ghostcomplete.completion.debounceMs": 0,
        # The trace setting must fill the trace channel (test_trace_channel_shows_lsp_messages).
        "ghostcomplete.trace.server": "messages",
        # VS Code's own word list would take Tab (and hide the ghost text) while open.
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "editor.suggestOnTriggerCharacters": False,
        "editor.wordBasedSuggestions": "off",
        "editor.inlineSuggest.enabled": True,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "workbench.enableExperiments": False,
        "extensions.ignoreRecommendations": True,
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "files.autoSave": "off",
        "update.mode": "none",
    }
    # Machine-overridable: a remote window such as code-server's takes it from the remote
    # machine's settings only (see Editor).
    machine_settings = {"ghostcomplete.server.command": server_executable()}
    started = Editor(root, folder, settings, machine_settings)
    try:
        yield started
    finally:
        started.stop()
        # Closing the tab leaves the extension host and `ghostcomplete serve` running:
        # the whole process group must be gone.
        assert started.group_members() == [], "code-server's process group outlived the tests"


@pytest.fixture(autouse=True)
def report_failure(request: pytest.FixtureRequest, editor: Editor) -> Iterator[None]:
    """On failure: a screenshot and the extension's logs, and where they are."""
    yield
    if not dict(request.node.user_properties).get("call_failed"):
        return
    where = ARTIFACTS / request.node.name
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    try:
        editor.screenshot(where / "screenshot.png")
    except Exception as error:
        (where / "screenshot-failed.txt").write_text(str(error))
    for log in editor.extension_logs():
        shutil.copy(log, where / log.name)
    shutil.copytree(editor.data / "logs", where / "vscode-logs", dirs_exist_ok=True)
    shutil.copy(editor.root / "code-server.log", where / "code-server.log")
    print(f"\nvscode-browser: screenshot and logs of {request.node.name} in {where}")


def write(editor: Editor, name: str, text: str) -> Path:
    path = editor.folder / name
    path.write_text(text)
    return path


def cli_suggestion(path: Path, line: int, column: int) -> str:
    done = subprocess.run(
        [server_executable(), "complete", f"{path}:{line}:{column}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.rstrip("\n")


def test_ghost_text_appears_and_tab_inserts_it(editor: Editor) -> None:
    path = write(editor, "shop.py", SHOP_CLEAR)
    # The server's answer for the same text once Enter has indented a new line in `clear`.
    probe = write(editor, "probe.py", SHOP_CLEAR + "        \n")
    expected = cli_suggestion(probe, SHOP_CLEAR.count("\n") + 1, 9)
    probe.unlink()
    assert expected == CLEAR_SUGGESTION, (
        "the picture must show a right suggestion: change SHOP_CLEAR"
    )
    editor.open_file("shop.py")
    editor.press("Control+End", "ArrowUp", "End", "Enter")
    assert editor.ghost_text() == expected
    if os.environ.get("GHOSTCOMPLETE_SCREENSHOT"):  # docs/ghost-text.png, on request
        editor.screenshot(Path(os.environ["GHOSTCOMPLETE_SCREENSHOT"]), clip_to_editor=True)
    editor.press("Tab")
    wait_until(lambda: editor.ghost_count() == 0, what="the ghost text to go")
    editor.press("Control+S")
    wait_until(
        lambda: path.read_text() == SHOP_CLEAR + f"        {expected}\n",
        what="the saved file",
    )


def test_word_by_word_accept_inserts_one_word(editor: Editor) -> None:
    path = write(editor, "market.py", SHOP)
    editor.open_file("market.py")
    editor.press("Control+End", "ArrowUp", "End")
    editor.type(".")
    # Whatever the server proposes here (shop.py, open from the test before, is context too):
    # the test is about taking one word of it.
    expected = editor.ghost_text()
    assert expected
    editor.press("Control+ArrowRight")
    # The extension's command runs VS Code's Accept Next Word: wait for its edit.
    wait_until(
        lambda: (
            editor.js(
                f"return (await page.locator({json.dumps(GHOST_SELECTOR)})"
                ".allTextContents()).join('');"
            )
            != expected
        ),
        what="the word accept's edit",
    )
    editor.press("Escape", "Control+S")
    saved = wait_until(lambda: path.read_text() != SHOP and path.read_text(), what="the saved file")
    line = saved.splitlines()[15]
    inserted = line.removeprefix("        del self.")
    assert inserted, line
    assert expected.startswith(inserted) and len(inserted) < len(expected), (inserted, expected)
    assert inserted.rstrip("[(.").isidentifier(), f"more than one word: {inserted!r}"
    # The extension told the server (didPartiallyAcceptCompletion): the telemetry database
    # has the partial accept, with the characters taken.
    database = Path(editor.settings["ghostcomplete.telemetry.path"])
    wait_until(lambda: len(inserted) in partial_accepts(database), what="a partially_accepted row")


def partial_accepts(database: Path) -> list[int]:
    """The accepted lengths of the partially_accepted events stored so far."""
    if not database.exists():
        return []
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
        rows = db.execute("SELECT value FROM events WHERE kind = 'partially_accepted'").fetchall()
    return [int(value) for (value,) in rows]


# --- the http backend, against a model server on loopback ------------------------------
EDITED = """\
import math


class Shape:
    def area(self, r):
        return math.pi * r * r

    def describe(self):
        return 'shape'
"""


@pytest.fixture(scope="module")
def model() -> Iterator[LoopbackModel]:
    started = LoopbackModel()
    try:
        yield started
    finally:
        started.close()


def http_settings(url: str) -> dict[str, Any]:
    return {
        "ghostcomplete.backend.kind": "http",
        "ghostcomplete.backend.http.url": url,
        "ghostcomplete.backend.http.model": "fake",
        "ghostcomplete.backend.http.stream": False,
        "ghostcomplete.completion.timeoutMs": 8000,
    }


def use_http_backend(editor: Editor, url: str) -> None:
    """The http backend at ``url``; a change of backend.kind restarts the server: wait for the
    new one."""
    before = editor.server_pids()
    restarts = editor.settings.get("ghostcomplete.backend.kind") != "http"
    editor.change_settings(http_settings(url))
    if restarts:
        wait_until(
            lambda: (pids := editor.server_pids()) and not set(pids) & set(before),
            timeout=30,
            what="the server restarted for the http backend",
        )
    editor.wait_status("ready", timeout=40)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    port = free_port()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


# --- the status bar, commands and settings --------------------------------------------------
def test_stats_report_matches_the_cli(editor: Editor) -> None:
    """Show Acceptance Stats renders `ghostcomplete stats --html`; its table's totals are the
    figures `ghostcomplete stats --json` gives for the same database."""
    editor.close_all_editors()
    database = editor.settings["ghostcomplete.telemetry.path"]
    names = ("requests", "offered", "shown", "noise", "typedThrough", "accepted")
    names += ("partiallyAccepted", "rejected")
    for _ in range(3):  # the figures move while earlier suggestions time out: read both again
        editor.command("ghostcomplete: Show Acceptance Stats")
        cells = editor.js(
            """
            const report = page.frameLocator("iframe.webview.ready").frameLocator("#active-frame");
            const row = report.locator("table").first().locator("tbody tr").first();
            await row.waitFor();
            return await row.locator("td").allInnerTexts();
            """
        )
        done = subprocess.run(
            [server_executable(), "stats", "--json", "--db", database],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        total = json.loads(done.stdout)["total"]
        if [int(cell) for cell in cells[1:9]] == [total[name] for name in names]:
            break
        editor.close_all_editors()
    assert cells[0] == "all"
    assert [int(cell) for cell in cells[1:9]] == [total[name] for name in names]
    assert cells[9] == f"{total['acceptanceRate'] * 100:.1f} %"
    assert int(cells[10]) == total["acceptedChars"]
    assert total["offered"] >= 1 and total["accepted"] >= 1
    editor.close_all_editors()


def test_trace_channel_shows_lsp_messages(editor: Editor) -> None:
    """ghostcomplete.trace.server = "messages" (set from the start): the trace output channel
    shows the LSP traffic."""
    editor.command("Output: Show Output Channels")
    editor.js(
        """
        const input = page.locator(".quick-input-widget input");
        await input.fill("ghostcomplete trace");
        await page.locator(".quick-input-list .monaco-list-row",
          { hasText: "ghostcomplete trace" }).first().waitFor();
        await page.keyboard.press("Enter");
        """
    )

    def shown() -> str:
        return str(
            editor.js(
                "return (await page.locator('.part.panel .monaco-editor .view-lines')"
                ".allInnerTexts()).join('\\n');"
            )
        )

    text = wait_until(
        lambda: "textDocument/" in shown() and shown().replace("\xa0", " "),
        what="LSP messages in the trace",
    )
    assert "Sending " in text or "Received " in text, text
    editor.command("View: Hide Panel")


def test_restart_and_a_setting_without_restart(editor: Editor) -> None:
    """Restart Server starts a new server process; a setting that needs no restart
    (completion.disabledLanguages) reaches the running one."""
    editor.close_all_editors()
    before = wait_until(lambda: editor.server_pids(), what="the server process")
    assert len(before) == 1, before
    editor.command("ghostcomplete: Restart Server")
    after = wait_until(
        lambda: (pids := editor.server_pids()) and not set(pids) & set(before) and pids,
        timeout=30,
        what="a new server process",
    )
    assert len(after) == 1, after
    editor.wait_status("ready", timeout=30)

    write(editor, "orders.py", SHOP)
    editor.change_settings({"ghostcomplete.completion.disabledLanguages": ["python"]})
    editor.open_file("orders.py")
    editor.press("Control+End", "ArrowUp", "End")
    editor.type(".")
    editor.wait_status("disabled for this file")
    assert editor.server_pids() == after, "the setting restarted the server"
    assert editor.ghost_count() == 0
    editor.change_settings({"ghostcomplete.completion.disabledLanguages": None})
    editor.open_file("orders.py")
    editor.press("Backspace")
    editor.type(".")
    assert editor.ghost_text()
    editor.wait_status("ready")
    assert editor.server_pids() == after
    editor.close_all_editors()


def test_status_bar_goes_through_its_states(editor: Editor, model: LoopbackModel) -> None:
    """ready → working (a slow model) → ready → error (the backend's address is wrong) →
    ready once it is right again → disabled for an excluded file → ready."""
    editor.close_all_editors()
    use_http_backend(editor, model.url)
    write(editor, "status.py", SHOP)
    editor.open_file("status.py")
    editor.press("Control+End", "ArrowUp", "End")
    model.script.completion_delay_s = 2.0
    editor.type(".")
    editor.wait_status("working")
    assert editor.ghost_text() == model.script.completion
    editor.wait_status("ready")
    model.script.completion_delay_s = 0.0

    editor.change_settings(
        {"ghostcomplete.backend.http.url": f"http://127.0.0.1:{closed_port()}/v1"}
    )
    editor.open_file("status.py")
    editor.press("Escape", "Backspace")
    editor.type(".")
    item = editor.wait_status("error")
    assert "error" in item["icons"], item

    editor.change_settings({"ghostcomplete.backend.http.url": model.url})
    editor.open_file("status.py")
    editor.press("Escape", "Backspace")
    editor.type(".")
    editor.wait_status("ready")

    (editor.folder / "secrets").mkdir()
    write(editor, "secrets/keys.py", SHOP)
    editor.open_file("secrets/keys.py")
    editor.press("Control+End", "ArrowUp", "End")
    editor.type(".")
    editor.wait_status("disabled for this file")
    assert editor.ghost_count() == 0
    editor.open_file("status.py")
    editor.press("Escape", "Backspace")
    editor.type(".")
    editor.wait_status("ready")
    editor.close_all_editors()


def test_edit_selection_is_one_undoable_edit(editor: Editor, model: LoopbackModel) -> None:
    """Edit Selection… with a chat model on loopback: progress shows while it works, the
    selection changes as one edit, and one undo restores it."""
    editor.close_all_editors()
    use_http_backend(editor, model.url)
    path = write(editor, "shape.py", EDITED)
    editor.open_file("shape.py")
    # Select lines 5-6 (def area ... return ...), whole lines.
    editor.press("Control+Home", "ArrowDown", "ArrowDown", "ArrowDown", "ArrowDown", "Home")
    editor.press("Shift+ArrowDown", "Shift+ArrowDown")
    model.script.edit_delay_s = 2.0
    editor.command("ghostcomplete: Edit Selection…")
    editor.js(
        """
        const input = page.locator(".quick-input-widget input");
        await input.waitFor({ state: "visible" });
        await input.fill("add type hints");
        await page.keyboard.press("Enter");
        """
    )
    wait_until(
        lambda: any("editing the selection" in text for text in editor.notification_texts()),
        what="the edit's progress notification",
    )
    model.script.edit_delay_s = 0.0
    edited = EDITED.replace("def area(self, r):", "def area(self, r: float) -> float:")
    editor.js('await page.locator(".monaco-editor textarea").first().focus();')
    wait_until(
        lambda: (
            "float"
            in editor.js(
                "return await page.locator('.editor-group-container.active .view-lines')"
                ".innerText();"
            )
        ),
        timeout=20,
        what="the edited text in the editor",
    )
    editor.press("Control+S")
    wait_until(lambda: path.read_text() == edited, what="the edited file on disk")
    editor.press("Control+Z", "Control+S")
    wait_until(lambda: path.read_text() == EDITED, what="one undo to restore the selection")
    editor.close_all_editors()


def test_the_lookup_shows_at_once_and_the_model_answer_replaces_it(
    editor: Editor, model: LoopbackModel
) -> None:
    """backend.hybrid.whileWaiting "lookup": the lookup's suggestion shows while a slow model
    writes; the server's didFindBetter makes the extension ask again, and the model's answer
    replaces it on screen with no key pressed."""
    editor.close_all_editors()
    before = editor.server_pids()
    http = http_settings(model.url)
    editor.change_settings(
        {
            **http,
            "ghostcomplete.backend.kind": "hybrid",
            "ghostcomplete.backend.hybrid.model": "http",
            # Ask the model on every request, so that the lookup's answer is an early one.
            "ghostcomplete.backend.hybrid.lookupFirst": 1.0,
            "ghostcomplete.backend.hybrid.whileWaiting": "lookup",
        }
    )
    wait_until(
        lambda: (pids := editor.server_pids()) and not set(pids) & set(before),
        timeout=30,
        what="the server restarted for the hybrid backend",
    )
    editor.wait_status("ready", timeout=40)
    write(editor, "early.py", SHOP_CLEAR)
    model.script.completion = "self.ledger = []"
    model.script.completion_delay_s = 3.0
    editor.open_file("early.py")
    editor.press("Control+End", "ArrowUp", "End", "Enter")

    def shown() -> str:
        """The ghost text as drawn now (Editor.ghost_text would trigger a suggestion)."""
        script = f"return (await page.locator({json.dumps(GHOST_SELECTOR)})"
        return str(editor.js(script + ".allTextContents()).join('');")).replace("\u00a0", " ")

    wait_until(lambda: shown() == CLEAR_SUGGESTION, what="the lookup's suggestion, early")
    wait_until(
        lambda: shown() == model.script.completion,
        timeout=15,
        what="the model's answer in place of the lookup's",
    )
    model.script.completion_delay_s = 0.0
    model.script.completion = "customers[customer.name]"
    editor.press("Escape")
    editor.close_all_editors()
    editor.change_settings(
        {
            "ghostcomplete.backend.kind": None,
            "ghostcomplete.backend.hybrid.model": None,
            "ghostcomplete.backend.hybrid.lookupFirst": None,
            "ghostcomplete.backend.hybrid.whileWaiting": None,
            **{key: None for key in http},
        }
    )
