"""``ghostcomplete.edit``: rewrite a selection as the user instructs, in one workspace/applyEdit.

validate -> prompt (edit/prompt.py, with the completion pipeline's snippets) -> chat
with an instruction-following backend -> read the answer (edit/answer.py) -> one
versioned TextEdit, the smallest that does it -> workspace/applyEdit -> ``{applied, message}``.

The editor sees nothing until the whole answer is in and checked: an edit is applied whole or
not at all. ``$/cancelRequest`` of the executeCommand request, or
``window/workDoneProgress/cancel`` of its ``workDoneToken``, stops the model call; so does
``edit.timeoutMs``. The document is left alone when it changed while the model was working.

Which backends can edit: those with ``async chat(messages, deadline, max_tokens) -> str``
whose ``follows_instructions`` is not False. HttpBackend has one (OpenAI-compatible
``/v1/chat/completions``); so has OnnxBackend when its model folder holds a chat template (a
local instruct model). The lookup backend and the built-in completion model cannot edit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from ghostcomplete.backends import BackendError
from ghostcomplete.completion.problems import edit_failure
from ghostcomplete.completion.settings import Settings
from ghostcomplete.context.cursor import Cursor
from ghostcomplete.context.positions import offset_at
from ghostcomplete.edit.answer import position_of
from ghostcomplete.edit.prompt import render_edit_messages
from ghostcomplete.edit.request import (
    Outcome,
    Planned,
    Selection,
    edit_context,
    instruct_backend,
    plan,
)
from ghostcomplete.ranker.snippets import Snippet
from ghostcomplete.server import protocol
from ghostcomplete.server.wire import command_params

if TYPE_CHECKING:
    from ghostcomplete.server.state import GhostServer

log = logging.getLogger("ghostcomplete.edit")

# How long the editor may take to answer workspace/applyEdit (seconds).
_APPLY_TIMEOUT_S = 30.0


def _position(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, dict):
        return None
    line, character = value.get("line"), value.get("character")
    if isinstance(line, int) and isinstance(character, int) and not isinstance(line, bool):
        return line, character
    return None


def select(arguments: Sequence[Any], ls: GhostServer, settings: Settings) -> Selection | Outcome:
    """The selection the arguments name, or why there is none to edit."""
    args = arguments[0] if len(arguments) == 1 and isinstance(arguments[0], dict) else None
    uri = args.get("uri") if args else None
    range_ = args.get("range") if args else None
    instruction = args.get("instruction") if args else None
    start = _position(range_.get("start")) if isinstance(range_, dict) else None
    end = _position(range_.get("end")) if isinstance(range_, dict) else None
    if not isinstance(uri, str) or start is None or end is None or not isinstance(instruction, str):
        return Outcome(False, "ghostcomplete.edit takes one argument: {uri, range, instruction}")
    if not instruction.strip():
        return Outcome(False, "say what to change: the instruction is empty")
    document = ls.snapshot(uri)
    if document is None:
        return Outcome(False, f"{uri} is not open in the editor")
    encoding = ls.position_encoding()
    first = offset_at(document.text, *start, encoding)
    last = offset_at(document.text, *end, encoding)
    if first is None or last is None or first > last:
        shown = f"{start[0]}:{start[1]}-{end[0]}:{end[1]}"
        return Outcome(False, f"the range {shown} is not in the document; nothing was changed")
    selection = Selection(document, instruction.strip(), first, last)
    if not selection.text.strip():
        return Outcome(False, "select the code to edit first: the selection is empty")
    limit = settings.edit.max_selection_chars
    if len(selection.text) > limit:
        return Outcome(
            False,
            f"the selection has {len(selection.text)} characters and edits take at most "
            f"{limit} (edit.maxSelectionChars): select less",
        )
    return selection


def _snippets(ls: GhostServer, selection: Selection) -> tuple[list[Snippet], dict[str, str]]:
    """The completion pipeline's snippets for the code at the selection's end (best effort),
    and the texts of the files they may come from (by URI), for redaction."""
    document = selection.document
    pipeline = ls.pipeline
    limit = ls.settings.context.max_file_bytes
    neighbours = [
        n
        for n in ls.neighbours(document)
        if not n.looks_binary and len(n.text) <= limit and pipeline.exclusion.reason(n.uri) is None
    ]
    cursor = Cursor(
        document, selection.end, document.text[: selection.end], document.text[selection.end :]
    )
    sources = {n.uri: n.text for n in neighbours}
    try:
        return pipeline.choose_snippets(cursor, neighbours), sources
    except Exception:  # context is a bonus: an edit without snippets beats no edit
        log.exception("choosing snippets for an edit failed")
        return [], sources


class _Progress:
    """Work-done progress on the client's token (none when the client passed no token)."""

    def __init__(self, ls: GhostServer, token: types.ProgressToken | None) -> None:
        self.ls = ls
        self.token = token

    def begin(self, message: str) -> Future[Any] | None:
        if self.token is None:
            return None
        begin = types.WorkDoneProgressBegin(
            title="ghostcomplete: edit", cancellable=True, message=message
        )
        self.ls.work_done_progress.begin(self.token, begin)
        return self.ls.work_done_progress.tokens.get(self.token)

    def report(self, message: str) -> None:
        if self.token is not None:
            report = types.WorkDoneProgressReport(message=message)
            self.ls.work_done_progress.report(self.token, report)

    def end(self, message: str) -> None:
        if self.token is not None:
            self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
            self.ls.work_done_progress.tokens.pop(self.token, None)


async def _prepare(ls: GhostServer, arguments: Sequence[Any], progress: _Progress) -> Any:
    """Everything before the editor is touched: a Planned edit or an Outcome."""
    settings = ls.settings
    chosen = select(arguments, ls, settings)
    if isinstance(chosen, Outcome):
        return chosen
    excluded = ls.pipeline.exclusion.reason(chosen.document.uri)
    if excluded is not None:
        return Outcome(False, f"this file is excluded from prompts ({excluded}); nothing was sent")
    workspace = ls.client_capabilities.workspace
    if not (workspace and workspace.apply_edit):
        return Outcome(False, "this editor cannot apply edits (no workspace/applyEdit support)")
    if ls.backends.broken is not None:
        return Outcome(False, f"the backend is not working: {ls.backends.broken}")
    backend = instruct_backend(ls.pipeline.backend, settings.backend.kind)
    if isinstance(backend, str):
        return Outcome(False, backend)
    remote = bool(getattr(ls.pipeline.backend, "remote", True))
    snippets, sources = _snippets(ls, chosen)
    context = edit_context(
        chosen, snippets, settings.edit.context_lines, remote, ls.pipeline.roots, sources
    )
    messages = render_edit_messages(context)
    timeout = settings.edit.timeout_ms / 1000
    progress.report(f"asking {getattr(ls.pipeline.backend, 'name', 'the model')}")
    started = time.monotonic()
    try:
        # Our own timeout comes first: the backend's deadline would keep a partial answer.
        async with asyncio.timeout(timeout):
            answer = await backend.chat(
                messages, deadline=started + timeout + 5.0, max_tokens=settings.edit.max_tokens
            )
    except TimeoutError:
        return Outcome(
            False,
            f"the model did not finish within {settings.edit.timeout_ms} ms (edit.timeoutMs); "
            "nothing was applied",
        )
    except BackendError as error:
        return Outcome(False, edit_failure(error))
    elapsed_ms = (time.monotonic() - started) * 1000
    log.info("edit answer after %.0f ms: %d characters", elapsed_ms, len(answer))
    progress.report("applying")
    # Secrets hidden from the model go back where its answer kept their placeholders.
    return plan(answer, chosen, context)


def workspace_edit(ls: GhostServer, planned: Planned) -> types.WorkspaceEdit:
    selection = planned.selection
    document = selection.document
    encoding = ls.position_encoding()
    start = position_of(document.text, selection.start + planned.change.start, encoding)
    end = position_of(document.text, selection.start + planned.change.end, encoding)
    edit = types.TextEdit(
        range=types.Range(types.Position(*start), types.Position(*end)),
        new_text=planned.change.replacement,
    )
    workspace = ls.client_capabilities.workspace
    edits = workspace.workspace_edit if workspace else None
    if edits and edits.document_changes:
        identifier = types.OptionalVersionedTextDocumentIdentifier(document.uri, document.version)
        return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(identifier, [edit])])
    return types.WorkspaceEdit(changes={document.uri: [edit]})


async def _apply(ls: GhostServer, planned: Planned) -> Outcome:
    document = planned.selection.document
    current = ls.snapshot(document.uri)
    if current is None or current.version != document.version or current.text != document.text:
        return Outcome(
            False, "the document changed while the model was working; nothing was applied"
        )
    label = f"ghostcomplete: {planned.selection.instruction}"[:120]
    params = types.ApplyWorkspaceEditParams(edit=workspace_edit(ls, planned), label=label)
    try:
        result = await asyncio.wait_for(ls.workspace_apply_edit_async(params), _APPLY_TIMEOUT_S)
    except TimeoutError:
        return Outcome(False, "the editor did not say whether it applied the edit")
    if not result.applied:
        reason = f": {result.failure_reason}" if result.failure_reason else ""
        return Outcome(False, f"the editor did not apply the edit{reason}")
    lines = planned.change.replacement.count("\n") + 1
    return Outcome(True, f"edited ({lines} line{'s' if lines != 1 else ''} written)")


async def run_edit(ls: GhostServer, arguments: Sequence[Any]) -> dict[str, Any]:
    """The ``ghostcomplete.edit`` command."""
    edit_id = uuid.uuid4().hex[:12]
    params = command_params()
    token = params.work_done_token if params and params.command == protocol.COMMAND_EDIT else None
    progress = _Progress(ls, token)
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[str] = loop.create_future()

    def stop_now(why: str) -> None:
        if not stop.done():
            stop.set_result(why)

    def stop_when_cancelled(why: str) -> Any:
        def callback(future: Future[Any]) -> None:
            if future.cancelled():
                loop.call_soon_threadsafe(stop_now, why)

        return callback

    # pygls cancels the request's own future on $/cancelRequest, not this task.
    request = ls.protocol._request_futures.get(ls.protocol.msg_id)
    if request is not None:
        request.add_done_callback(stop_when_cancelled("$/cancelRequest"))
    by_progress = progress.begin("reading the selection")
    if by_progress is not None:
        by_progress.add_done_callback(stop_when_cancelled("window/workDoneProgress/cancel"))
    work = asyncio.ensure_future(_prepare(ls, arguments, progress))
    outcome = Outcome(False, "edit cancelled; the document is unchanged")
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stop.done():
            log.info("[%s] edit cancelled (%s)", edit_id, stop.result())
        else:
            prepared = work.result()
            # No await between the check above and sending the edit: a cancel cannot land
            # half-way. Once sent, the edit is the editor's to apply.
            outcome = await _apply(ls, prepared) if isinstance(prepared, Planned) else prepared
    except Exception as error:
        log.exception("[%s] edit failed", edit_id)
        outcome = Outcome(False, f"the edit failed: {error}")
    finally:
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
        stop.cancel()
        state = "applied" if outcome.applied else "not applied"
        log.info("[%s] %s: %s", edit_id, state, outcome.message)
        progress.end(outcome.message)
    return outcome.as_json()
