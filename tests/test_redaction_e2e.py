"""Secrets never reach a remote model: the real server with ``backend.kind = "http"`` against a
model server on loopback that records every byte it is sent.

Completions: a private key in an allowed file (and in a neighbouring file), whatever line the
token budget trims the prompt at, and the short or unusual secrets of tests/golden/secrets.toml.
Edit requests: the selection is redacted, and the applied edit holds the original secrets."""

from __future__ import annotations

import base64
import json
import random
import re
import socket
import textwrap
from typing import Any

import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import server_executable

pytestmark = [pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = free_port()
HTTP = {"url": f"http://127.0.0.1:{PORT}/v1", "model": "fake", "fimFamily": "qwen"}


def fake_key(seed: int, lines: int = 26) -> tuple[str, list[str]]:
    """A PEM block of random base64 (a key's shape, not a key) and its body lines."""
    rng = random.Random(seed)
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(lines * 48 - 7))).decode()
    rows = textwrap.wrap(body, 64)
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(rows) + "\n-----END PRIVATE KEY-----", rows


KEY, KEY_LINES = fake_key(1)
NEIGHBOUR_KEY, NEIGHBOUR_KEY_LINES = fake_key(2)

# The secrets of issue 23, item 2, and the vendor shapes: none of these may be sent.
SHORT_SECRETS = (
    'password = "hunter2"\n'
    'DATABASE_URL = "postgres://admin:PW@host/db"\n'
    'HEADERS = {"Authorization": "Bearer abc123def456ghi789"}\n'
    "PASSWD=Zq9-unquoted\n"
    'conn = connect(host="db", pwd="kw-s3cret")\n'
    'AWS_KEY_ID = "AKIAZ7Q3XK2LMN4OPQ5R"\n'
    'GH = "ghp_R2d2C3p0Lk9Jh8Gf7Ds6Aa5Qw4Er3Ty2Ui1O"\n'
    'SLACK = "xoxb-2417305810-8394072615-Qh4TmZ8cL1vW"\n'
    'MAPS = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"\n'
    'STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"\n'
    'SESSION = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I"\n'
    'settings = {"api_key": "0123456789abcdef"}\n'
)
SHORT_VALUES = [
    "hunter2",
    "admin:PW@",
    "abc123def456ghi789",
    "Zq9-unquoted",
    "kw-s3cret",
    "AKIAZ7Q3XK2LMN4OPQ5R",
    "ghp_R2d2C3p0Lk9Jh8Gf7Ds6Aa5Qw4Er3Ty2Ui1O",
    "xoxb-2417305810-8394072615-Qh4TmZ8cL1vW",
    "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    "0123456789abcdef",
]

# The cursor at the end: the budget trims the prefix, at a different key line for each budget.
KEY_ABOVE = (
    "import ssl\n\n"
    f'SIGNING_KEY = """{KEY}"""\n\n'
    + SHORT_SECRETS
    + "\n\ndef signing_context(path):\n    context = ssl.create_default_context()\n    return "
)
# The cursor at the top: the budget trims the suffix inside the key.
KEY_BELOW = (
    f'def load_signing_key(path):\n    return \n\n\nSIGNING_KEY = """{KEY}"""\n\n' + SHORT_SECRETS
)
# A neighbour whose chunks and windows cut through its key.
NEIGHBOUR = (
    "def signing_context(path):\n    return ssl.create_default_context(path)\n\n"
    f'NEIGHBOUR_KEY = """{NEIGHBOUR_KEY}"""\n\n'
    "def load_signing_key(path):\n    return open(path).read()\n"
)


async def answer_completion(request: Recorded, reply: Reply) -> None:
    await reply.json({"choices": [{"index": 0, "text": "x", "finish_reason": "stop"}]})


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"backend": {"kind": "http", "http": HTTP}},
        )
    )
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, uri: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text))
    )


def configure(client: LanguageClient, settings: dict[str, Any]) -> None:
    pushed = {"backend": {"kind": "http", "http": HTTP}, **settings}
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"ghostcomplete": pushed})
    )


async def ask(client: LanguageClient, uri: str, line: int, character: int) -> None:
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
        )
    )


def end_of(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 1, len(lines[-1])


BUDGETS = [64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024, 1536, 2048, 4096]
SNIPPET_MODES = [
    {"snippets": "ranked"},
    {"snippets": "bm25"},
    {"snippets": "copilot", "windowLines": 5},
    {"snippets": "copilot", "windowLines": 12},
]


@pytest.mark.timeout(180)
async def test_no_line_of_a_private_key_and_no_short_secret_reaches_the_model(
    client: LanguageClient, tmp_path
):
    server = await FakeModelServer(answer_completion).start(PORT)
    above, below = (tmp_path / "signing.py").as_uri(), (tmp_path / "loader.py").as_uri()
    neighbour = (tmp_path / "neighbour_keys.py").as_uri()
    try:
        open_doc(client, neighbour, NEIGHBOUR)
        open_doc(client, below, KEY_BELOW)
        open_doc(client, above, KEY_ABOVE)
        asked = 0
        for mode in SNIPPET_MODES:
            for budget in BUDGETS:
                configure(client, {"budget": {"maxTokens": budget}, "context": mode})
                await ask(client, above, *end_of(KEY_ABOVE))
                await ask(client, below, 1, len("    return "))
                asked += 2
        assert await server.wait_for(lambda: len(server.requests) >= asked, timeout=10)
    finally:
        await server.close()

    sent = b"".join(request.raw_body for request in server.requests)
    prompts = "".join(request.body["prompt"] for request in server.requests)
    for line in [*KEY_LINES, *NEIGHBOUR_KEY_LINES]:
        assert line.encode() not in sent and line not in prompts, line
    # Not even a piece of a line (a cut line, or a line split by JSON escaping).
    pieces = {line[i : i + 16] for line in KEY_LINES + NEIGHBOUR_KEY_LINES for i in (0, 24, 48)}
    leaked = [piece for piece in pieces if len(piece) == 16 and piece in prompts]
    assert not leaked
    for value in SHORT_VALUES:
        assert value.encode() not in sent and value not in prompts, value
    # The prompts did go out, redacted, with the neighbour's code as context.
    assert "def signing_context(path)" in prompts and "<redacted>" in prompts
    assert "neighbour_keys.py" in prompts
    assert 'password = "<redacted>"' in prompts


# --- edit requests ----------------------------------------------------------------------------

SOURCE = (
    "import boto3\n"
    "\n"
    "\n"
    "def client():\n"
    '    key = "AKIAZ7Q3XK2LMN4OPQ5R"\n'
    '    password = "hunter2"\n'
    "    return boto3.client(key, password)\n"
)
SELECTION = {"start": {"line": 4, "character": 0}, "end": {"line": 7, "character": 0}}
EXPECTED = SOURCE.replace("key = ", "access_key = ").replace("(key,", "(access_key,")


async def rename_in_selection(request: Recorded, reply: Reply) -> None:
    """A chat model that renames ``key`` in the selection it is shown (placeholders kept)."""
    prompt = request.body["messages"][-1]["content"]
    shown = re.search(r"The selection:\n```python\n(.*?)```", prompt, re.DOTALL)
    assert shown is not None
    code = re.sub(r"\bkey\b", "access_key", shown.group(1))
    answer = f"Here it is:\n\n```python\n{code}```\n"
    if request.body.get("stream"):
        event = json.dumps({"choices": [{"index": 0, "delta": {"content": answer}}]})
        await reply.stream([event, "[DONE]"])
    else:
        await reply.json({"choices": [{"index": 0, "message": {"content": answer}}]})


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[server_executable(), "serve"]),
    params=["neovim", "visual-studio-code"],
)
async def editor(lsp_client: LanguageClient, request: pytest.FixtureRequest):
    lsp_client.applied: list[types.ApplyWorkspaceEditParams] = []  # type: ignore[misc]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        lsp_client.applied.append(params)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(request.param),
            initialization_options={"backend": {"kind": "http", "http": HTTP}},
        )
    )
    yield
    await lsp_client.shutdown_session()


def applied_text(text: str, params: types.ApplyWorkspaceEditParams) -> str:
    edit = params.edit
    changes = [change.edits for change in edit.document_changes or []]  # type: ignore[union-attr]
    changes += list((edit.changes or {}).values())
    [[change]] = changes
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[: change.range.start.line])
    end = sum(len(line) + 1 for line in lines[: change.range.end.line])
    start += change.range.start.character
    end += change.range.end.character
    return text[:start] + change.new_text + text[end:]


@pytest.mark.timeout(30)
async def test_edit_hides_the_selections_secrets_and_applies_them_back(
    editor: LanguageClient, tmp_path
):
    chat = await FakeModelServer(rename_in_selection).start(PORT)
    uri = (tmp_path / "aws.py").as_uri()
    try:
        open_doc(editor, uri, SOURCE)
        arguments = [{"uri": uri, "range": SELECTION, "instruction": "rename key to access_key"}]
        result = await editor.workspace_execute_command_async(
            types.ExecuteCommandParams("ghostcomplete.edit", arguments)
        )
    finally:
        await chat.close()
    assert result["applied"] is True, result
    [request] = chat.requests
    assert request.path == "/v1/chat/completions"
    assert b"AKIAZ7Q3XK2LMN4OPQ5R" not in request.raw_body and b"hunter2" not in request.raw_body
    assert b"<redacted-" in request.raw_body
    [params] = editor.applied  # type: ignore[attr-defined]
    assert applied_text(SOURCE, params) == EXPECTED
