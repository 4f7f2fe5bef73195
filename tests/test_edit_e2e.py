"""Edit requests end to end: the real server (pytest-lsp) with ``backend.kind = "http"``
against a chat-completions server on loopback that records what it is asked.

An edit is one workspace/applyEdit with the smallest TextEdit, at the selection's indentation,
or no applyEdit at all and a message that says why."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import open_document, server_executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

TEXT = (
    "import math\n"
    "\n"
    "class Shape:\n"
    "    def area(self, r):\n"
    "        return math.pi * r * r\n"
    "\n"
    "    def describe(self):\n"
    "        return 'shape'\n"
)
# Lines 3-4 (def area ... return ...), whole lines.
AREA = {"start": {"line": 3, "character": 0}, "end": {"line": 5, "character": 0}}
# What a chatty model answers: commentary, a fence, the code dedented.
ANSWER = (
    "Here is the method with type hints:\n\n"
    "```python\n"
    "def area(self, r: float) -> float:\n"
    "    return math.pi * r * r\n"
    "```\n\n"
    "The hints make the units clear."
)
HELPER = "def circle_area(radius: float) -> float:\n    return math.pi * radius * radius\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = free_port()
HTTP = {"url": f"http://127.0.0.1:{PORT}/v1", "model": "fake-chat"}


@dataclass
class ChatModel:
    """What the fake chat server answers next."""

    answer: str = ANSWER
    delay_s: float = 0.0
    stream: bool = True


MODEL = ChatModel()


async def chat_completions(request: Recorded, reply: Reply) -> None:
    if MODEL.delay_s and await reply.hang(MODEL.delay_s):
        return  # the client hung up: the edit was cancelled
    if not request.body.get("stream") or not MODEL.stream:
        message = {"role": "assistant", "content": MODEL.answer}
        await reply.json({"choices": [{"index": 0, "message": message}]})
        return
    pieces = [MODEL.answer[i : i + 7] for i in range(0, len(MODEL.answer), 7)]
    events = [json.dumps({"choices": [{"index": 0, "delta": {"content": p}}]}) for p in pieces]
    await reply.stream([*events, "[DONE]"])


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[server_executable(), "serve"]),
    params=["neovim", "visual-studio-code"],
)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):
    MODEL.__init__()  # type: ignore[misc]
    lsp_client.applied: list[types.ApplyWorkspaceEditParams] = []  # type: ignore[misc]
    lsp_client.refuse_edits = False  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        lsp_client.applied.append(params)  # type: ignore[attr-defined]
        if lsp_client.refuse_edits:  # type: ignore[attr-defined]
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="read-only")
        return types.ApplyWorkspaceEditResult(applied=True)

    chat = await FakeModelServer(chat_completions).start(PORT)
    lsp_client.chat = chat  # type: ignore[attr-defined]
    lsp_client.initialize_result = await lsp_client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            initialization_options={"backend": {"kind": "http", "http": HTTP}},
        )
    )
    yield
    await lsp_client.shutdown_session()
    await chat.close()


def edit_params(
    uri: str, range_: dict[str, Any], instruction: str, token: str | None = None
) -> types.ExecuteCommandParams:
    arguments = [{"uri": uri, "range": range_, "instruction": instruction}]
    return types.ExecuteCommandParams("ghostcomplete.edit", arguments, work_done_token=token)


async def edit(client: LanguageClient, uri: str, range_: dict[str, Any], instruction: str) -> Any:
    return await client.workspace_execute_command_async(edit_params(uri, range_, instruction))


def configure(client: LanguageClient, settings: dict[str, Any]) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"ghostcomplete": settings})
    )


def text_edits(client: LanguageClient) -> list[tuple[str, list[types.TextEdit]]]:
    """The (uri, edits) of every workspace/applyEdit the client received."""
    found: list[tuple[str, list[types.TextEdit]]] = []
    for params in client.applied:  # type: ignore[attr-defined]
        edit = params.edit
        for change in edit.document_changes or []:
            assert isinstance(change, types.TextDocumentEdit)
            found.append((change.text_document.uri, list(change.edits)))  # type: ignore[arg-type]
        for uri, edits in (edit.changes or {}).items():
            found.append((uri, list(edits)))
    return found


def applied_to(text: str, edit: types.TextEdit) -> str:
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[: edit.range.start.line])
    end = sum(len(line) + 1 for line in lines[: edit.range.end.line])
    start += edit.range.start.character
    end += edit.range.end.character
    return text[:start] + edit.new_text + text[end:]


async def test_edit_is_one_minimal_apply_edit_at_the_selections_indentation(
    client: LanguageClient, tmp_path
):
    helpers = open_document(client, tmp_path / "geometry.py", "import math\n\n" + HELPER)
    assert helpers
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    result = await edit(client, uri, AREA, "add type hints")
    assert result["applied"] is True, result
    [(target, [change])] = text_edits(client)
    assert target == uri
    # Only what changed: ")" became ": float) -> float", on line 3.
    assert change.range == types.Range(types.Position(3, 20), types.Position(3, 21))
    assert change.new_text == ": float) -> float"
    assert applied_to(TEXT, change) == TEXT.replace(
        "def area(self, r):", "def area(self, r: float) -> float:"
    )
    [params] = client.applied  # type: ignore[attr-defined]
    if params.edit.document_changes:  # VS Code: versioned, so a stale edit is refused
        assert params.edit.document_changes[0].text_document.version == 1  # type: ignore[union-attr]

    [request] = client.chat.requests  # type: ignore[attr-defined]
    assert request.path == "/v1/chat/completions"
    body = request.body
    assert body["model"] == "fake-chat"
    system, user = body["messages"]
    assert system["role"] == "system" and "fenced code block" in system["content"]
    prompt = user["content"]
    assert "Instruction: add type hints" in prompt
    selected = "    def area(self, r):\n        return math.pi * r * r\n"
    assert "class Shape:\n<selection>" + selected + "</selection>\n    def describe" in prompt
    assert "The selection:\n```python\n" + selected + "```" in prompt
    assert "geometry.py" in prompt and "def circle_area(radius: float)" in prompt


async def test_selection_inside_a_line_and_a_plain_answer(client: LanguageClient, tmp_path):
    MODEL.answer = "math.pi * r ** 2"
    MODEL.stream = False
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    start, end = TEXT.split("\n")[4].index("math"), len(TEXT.split("\n")[4])
    range_ = {"start": {"line": 4, "character": start}, "end": {"line": 4, "character": end}}
    result = await edit(client, uri, range_, "use the power operator")
    assert result["applied"] is True, result
    [(_, [change])] = text_edits(client)
    assert applied_to(TEXT, change) == TEXT.replace("math.pi * r * r", "math.pi * r ** 2")
    assert change.new_text == "* 2"


async def test_progress_on_the_clients_token(client: LanguageClient, tmp_path):
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    client.progress_reports["edit-1"] = []
    result = await client.workspace_execute_command_async(
        edit_params(uri, AREA, "add type hints", token="edit-1")
    )
    assert result["applied"] is True
    reports = client.progress_reports["edit-1"]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    assert reports[-1].message == result["message"]


def span(line: int, character: int, end_line: int, end_character: int) -> dict[str, Any]:
    return {
        "start": {"line": line, "character": character},
        "end": {"line": end_line, "character": end_character},
    }


@pytest.mark.parametrize(
    ("range_", "instruction", "expected"),
    [
        (span(99, 0, 99, 1), "x", "is not in the document"),
        (span(3, 0, 3, 99), "x", "is not in the document"),
        (span(4, 0, 3, 0), "x", "is not in the document"),
        (span(3, 2, 3, 2), "x", "the selection is empty"),
        (span(5, 0, 6, 0), "x", "the selection is empty"),
        (AREA, "   ", "the instruction is empty"),
    ],
    ids=["past-the-end", "past-the-line", "backwards", "empty", "blank-line", "no-instruction"],
)
async def test_bad_requests_get_a_message_and_no_edit(
    client: LanguageClient, tmp_path, range_, instruction, expected
):
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    result = await edit(client, uri, range_, instruction)
    assert result["applied"] is False and expected in result["message"], result
    assert client.applied == [] and client.chat.requests == []  # type: ignore[attr-defined]


async def test_malformed_arguments_and_closed_documents(client: LanguageClient, tmp_path):
    answer = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.edit", [])
    )
    assert answer["applied"] is False and "{uri, range, instruction}" in answer["message"]
    closed = (tmp_path / "never_opened.py").as_uri()
    answer = await edit(client, closed, AREA, "add type hints")
    assert answer["applied"] is False and "is not open" in answer["message"]
    assert client.applied == []  # type: ignore[attr-defined]


async def test_oversized_selection(client: LanguageClient, tmp_path):
    configure(client, {"edit": {"maxSelectionChars": 20}})
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    result = await edit(client, uri, AREA, "add type hints")
    assert result["applied"] is False
    assert "edits take at most 20 (edit.maxSelectionChars)" in result["message"]
    assert client.applied == [] and client.chat.requests == []  # type: ignore[attr-defined]


async def test_unreachable_backend(client: LanguageClient, tmp_path):
    await client.chat.close()  # type: ignore[attr-defined]
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    result = await edit(client, uri, AREA, "add type hints")
    assert result["applied"] is False
    assert "cannot reach the model server at http://127.0.0.1:" in result["message"]
    assert client.applied == []  # type: ignore[attr-defined]


async def test_slow_model_times_out(client: LanguageClient, tmp_path):
    configure(client, {"edit": {"timeoutMs": 300}})
    MODEL.delay_s = 5.0
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    result = await edit(client, uri, AREA, "add type hints")
    assert result["applied"] is False and "within 300 ms (edit.timeoutMs)" in result["message"]
    assert client.applied == []  # type: ignore[attr-defined]


async def test_cancel_request_stops_the_model_and_edits_nothing(client: LanguageClient, tmp_path):
    MODEL.delay_s = 2.0
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    params = edit_params(uri, AREA, "add type hints")
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND, params, msg_id="edit-to-cancel"
        )
    )
    chat = client.chat  # type: ignore[attr-defined]
    assert await chat.wait_for(lambda: len(chat.requests) == 1)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="edit-to-cancel"))
    with pytest.raises(JsonRpcException, match="cancel"):
        await pending
    assert await chat.wait_for(lambda: chat.requests[0].client_closed_early)  # model stopped
    await asyncio.sleep(MODEL.delay_s)  # the answer would have come by now
    assert client.applied == []  # type: ignore[attr-defined]


async def test_cancel_through_work_done_progress(client: LanguageClient, tmp_path):
    MODEL.delay_s = 2.0
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    client.progress_reports["edit-2"] = []
    pending = asyncio.ensure_future(
        client.workspace_execute_command_async(
            edit_params(uri, AREA, "add type hints", token="edit-2")
        )
    )
    chat = client.chat  # type: ignore[attr-defined]
    assert await chat.wait_for(lambda: len(chat.requests) == 1)
    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token="edit-2"))
    result = await pending
    assert result == {"applied": False, "message": "edit cancelled; the document is unchanged"}
    assert await chat.wait_for(lambda: chat.requests[0].client_closed_early)
    reports = client.progress_reports["edit-2"]
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    await asyncio.sleep(MODEL.delay_s)
    assert client.applied == []  # type: ignore[attr-defined]


async def test_document_changed_while_the_model_worked(client: LanguageClient, tmp_path):
    MODEL.delay_s = 0.5
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    pending = asyncio.ensure_future(edit(client, uri, AREA, "add type hints"))
    chat = client.chat  # type: ignore[attr-defined]
    assert await chat.wait_for(lambda: len(chat.requests) == 1)
    start = types.Position(0, 0)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=2, uri=uri),
            [types.TextDocumentContentChangePartial(types.Range(start, start), "# new\n")],
        )
    )
    result = await pending
    assert result["applied"] is False and "document changed" in result["message"]
    assert client.applied == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("```python\ndef area(self, r: float) -> fl", "cut off"),
        ("```python\ndef area(self, r):\n    return math.pi * r * r\n```", "left the selection"),
        ("", "no code"),
    ],
    ids=["cut-off", "unchanged", "empty"],
)
async def test_answers_that_are_not_applied(client: LanguageClient, tmp_path, answer, expected):
    MODEL.answer = answer
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    result = await edit(client, uri, AREA, "add type hints")
    assert result["applied"] is False and expected in result["message"], result
    assert client.applied == []  # type: ignore[attr-defined]


async def test_editor_refuses_the_edit(client: LanguageClient, tmp_path):
    client.refuse_edits = True  # type: ignore[attr-defined]
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    result = await edit(client, uri, AREA, "add type hints")
    assert result == {"applied": False, "message": "the editor did not apply the edit: read-only"}
    assert len(client.applied) == 1  # type: ignore[attr-defined]


async def test_lookup_backend_names_what_to_configure(client: LanguageClient, tmp_path):
    configure(client, {"backend": {"kind": "lookup"}})
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    status = await client.workspace_execute_command_async(
        types.ExecuteCommandParams("ghostcomplete.status", [])
    )
    assert status["backend"] == "lookup"
    result = await edit(client, uri, AREA, "add type hints")
    assert result["applied"] is False
    message = result["message"]
    assert "the lookup backend" in message and 'backend.kind = "http"' in message
    assert "backend.http.url" in message and "/v1/chat/completions" in message
    assert client.applied == [] and client.chat.requests == []  # type: ignore[attr-defined]


INSTRUCT = Path(__file__).parent / "fixtures" / "onnx" / "tiny-qwen2-instruct"
ADD = "import math\n\n\ndef add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n"


async def test_local_onnx_instruct_model_edits(client: LanguageClient, tmp_path):
    """No network at all: the model folder's chat template, tokenizer and decoder (trained to
    answer with typed ``add``) produce the edit."""
    configure(client, {"backend": {"kind": "onnx", "onnx": {"path": str(INSTRUCT)}}})
    uri = open_document(client, tmp_path / "add.py", ADD)
    whole = {"start": {"line": 3, "character": 0}, "end": {"line": 5, "character": 0}}
    result = await edit(client, uri, whole, "add type hints")
    assert result["applied"] is True, result
    [(target, [change])] = text_edits(client)
    assert target == uri
    assert applied_to(ADD, change) == ADD.replace(
        "def add(a, b):", "def add(a: int, b: int) -> int:"
    )
    assert change.new_text == ": int, b: int) -> int"  # the smallest edit
    assert client.chat.requests == []  # type: ignore[attr-defined]


async def test_builtin_completion_model_names_what_to_configure(client: LanguageClient, tmp_path):
    configure(client, {"backend": {"kind": "onnx"}})
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    result = await edit(client, uri, AREA, "add type hints")
    assert result["applied"] is False
    message = result["message"]
    assert "no chat template" in message and "backend.onnx.path" in message
    assert 'backend.kind = "http"' in message
    assert client.applied == [] and client.chat.requests == []  # type: ignore[attr-defined]


async def test_shutdown_with_an_edit_in_flight(client: LanguageClient, tmp_path):
    MODEL.delay_s = 5.0
    uri = open_document(client, tmp_path / "shape.py", TEXT)
    pending = asyncio.ensure_future(edit(client, uri, AREA, "add type hints"))
    pending.add_done_callback(lambda future: future.cancelled() or future.exception())
    chat = client.chat  # type: ignore[attr-defined]
    assert await chat.wait_for(lambda: len(chat.requests) == 1)
    # The fixture's shutdown must answer (pygls used to fail it with a pending command).
