"""Hostile input against the real server: random incremental edits in awkward text, positions
that point nowhere, malformed JSON-RPC, huge and binary documents, many documents at once,
and proof that excluded files and secrets never reach a remote model.

After every random edit sequence the server's copy of the document (``ghostcomplete.debugDocument``:
version, UTF-16 length, SHA-256) must equal the client's, computed here by an independent
model of LSP's rules: lines end at LF, CRLF or CR only; a character past the end of its line
means the end of the line; a line past the end of the document means the end of the document;
a position inside a surrogate pair means the end of that character.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from http_fakes import FakeModelServer, Recorded, Reply
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from support import request_completion, server_executable

pytestmark = [pytest.mark.e2e]

DEBUG_DOCUMENT = "ghostcomplete.debugDocument"
EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- the client's model of a document ------------------------------------------------------------

_LINE_BREAK = re.compile("\r\n|\r|\n")


def _units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def utf16_length(text: str) -> int:
    return sum(_units(ch) for ch in text)


def offset_of(text: str, line: int, character: int) -> int:
    """LSP position -> string index, with LSP's rules for positions that point nowhere."""
    starts = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]
    if line >= len(starts):
        return len(text)
    start = starts[line]
    end = len(text) if line + 1 == len(starts) else starts[line + 1]
    content_end = end
    while content_end > start and text[content_end - 1] in "\r\n":
        content_end -= 1
    units, index = 0, start
    while index < content_end and units < character:
        units += _units(text[index])
        index += 1
    return index


def apply_edit(text: str, edit: Edit) -> str:
    start = offset_of(text, edit.start_line, edit.start_character)
    end = offset_of(text, edit.end_line, edit.end_character)
    start, end = min(start, end), max(start, end)
    return text[:start] + edit.text + text[end:]


def digest(text: str) -> dict[str, Any]:
    return {
        "length": utf16_length(text),
        "lines": len(_LINE_BREAK.findall(text)) + 1,
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    }


@dataclass(frozen=True)
class Edit:
    start_line: int
    start_character: int
    end_line: int
    end_character: int
    text: str

    def change(self) -> types.TextDocumentContentChangePartial:
        return types.TextDocumentContentChangePartial(
            range=types.Range(
                types.Position(self.start_line, self.start_character),
                types.Position(self.end_line, self.end_character),
            ),
            text=self.text,
        )


# --- strategies -----------------------------------------------------------------------------------

PIECES = [
    "a",
    "Z",
    "_x1",
    " ",
    "    ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "é",  # precomposed
    "e\u0301",  # e + combining acute
    "a\u0308\u0323",  # two combining marks
    "中文",
    "😀",  # astral: a surrogate pair in UTF-16
    "𝔘𝔫",
    "👩\u200d💻",  # ZWJ sequence
    "\u2028",  # LINE SEPARATOR: not a line break for LSP
    "\x0c",  # form feed (in real Python sources): not a line break for LSP
    "\x85",
    "\x00",
    "def f(x):\n    return x\n",
]
pieces = st.sampled_from(PIECES) | st.text(max_size=4)
texts = st.lists(pieces, max_size=12).map("".join) | st.builds(
    lambda head, size, tail: head + "x" * size + tail,
    st.lists(pieces, max_size=3).map("".join),
    st.integers(2_000, 20_000),  # a very long line
    st.lists(pieces, max_size=3).map("".join),
)
coordinates = st.integers(0, 6) | st.integers(0, 60) | st.sampled_from([2**31 - 1, 10**6])
edits = st.builds(Edit, coordinates, coordinates, coordinates, coordinates, texts)


# --- the server -----------------------------------------------------------------------------------


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
    )
    yield
    await lsp_client.shutdown_session()


async def server_copy(client: LanguageClient, uri: str | None = None) -> Any:
    arguments = [uri] if uri is not None else []
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(DEBUG_DOCUMENT, arguments)
    )


def open_text(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language, 1, text))
    )


_counter = iter(range(10**9))


def fresh_uri(suffix: str = ".py") -> str:
    return f"file:///hostile/doc{next(_counter)}{suffix}"


@pytest.mark.timeout(120)
@EXAMPLES
@given(initial=texts, sequence=st.lists(edits, min_size=1, max_size=10))
async def test_random_edits_keep_the_server_copy_equal_to_the_client(
    client: LanguageClient, initial: str, sequence: list[Edit]
) -> None:
    uri = fresh_uri()
    open_text(client, uri, initial)
    expected = initial
    for version, edit in enumerate(sequence, start=2):
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version, uri), [edit.change()]
            )
        )
        expected = apply_edit(expected, edit)
    copy = await server_copy(client, uri)
    assert copy == {"uri": uri, "version": len(sequence) + 1, **digest(expected)}
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )


@pytest.mark.timeout(120)
@EXAMPLES
@given(
    initial=texts,
    edit=edits,
    line=coordinates,
    character=coordinates,
)
async def test_completions_anywhere_are_answered(
    client: LanguageClient, initial: str, edit: Edit, line: int, character: int
) -> None:
    """Several changes in one notification, then a completion at a random position (outside
    the text, inside a surrogate pair): answered with a list, never an error."""
    uri = fresh_uri()
    open_text(client, uri, initial)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(2, uri), [edit.change(), edit.change()]
        )
    )
    expected = apply_edit(apply_edit(initial, edit), edit)
    result = await request_completion(client, uri, line, character)
    assert isinstance(result, types.InlineCompletionList)
    assert await server_copy(client, uri) == {"uri": uri, "version": 2, **digest(expected)}


@pytest.mark.timeout(60)
async def test_lone_surrogates_from_the_wire_are_kept_and_survived(client: LanguageClient):
    """JSON may carry a lone surrogate escape; the text is odd but the server must cope."""
    uri = fresh_uri()
    text = "x = '\ud83d'\ny = 'ok'\n"
    open_text(client, uri, text)
    result = await request_completion(client, uri, 0, 6)
    assert isinstance(result, types.InlineCompletionList)
    assert await server_copy(client, uri) == {"uri": uri, "version": 1, **digest(text)}


@pytest.mark.timeout(60)
async def test_ten_megabyte_document(client: LanguageClient):
    line = "value_{0} = compute(value_{0}, 'αβγ😀')\n"
    text = "".join(line.format(index) for index in range(200_000))[: 10 * 2**20]
    uri = fresh_uri()
    open_text(client, uri, text)
    last = text.count("\n")
    edit = Edit(last, 0, last, 0, "value_")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(2, uri), [edit.change()]
        )
    )
    expected = apply_edit(text, edit)
    result = await request_completion(client, uri, last, len("value_"))
    assert isinstance(result, types.InlineCompletionList)
    assert await server_copy(client, uri) == {"uri": uri, "version": 2, **digest(expected)}


@pytest.mark.timeout(60)
async def test_binary_document(client: LanguageClient):
    """Bytes of a compiled file decoded leniently, as an editor might show them."""
    raw = bytes(range(256)) * 4096 + os.urandom(64 * 1024)
    text = raw.decode("latin-1")
    uri = fresh_uri(".pyc")
    open_text(client, uri, text, language="plaintext")
    for line, character in ((0, 0), (3, 7), (10**6, 10**6)):
        assert isinstance(
            await request_completion(client, uri, line, character), types.InlineCompletionList
        )
    assert await server_copy(client, uri) == {"uri": uri, "version": 1, **digest(text)}


@pytest.mark.timeout(90)
async def test_two_hundred_open_documents(client: LanguageClient):
    texts_by_uri = {}
    for index in range(200):
        uri = fresh_uri()
        texts_by_uri[uri] = f"def handler_{index}(request):\n    return respond(request, {index})\n"
        open_text(client, uri, texts_by_uri[uri])
    last = list(texts_by_uri)[-1]
    result = await request_completion(client, last, 1, len("    return resp"))
    assert isinstance(result, types.InlineCompletionList)
    copies = await server_copy(client)
    mine = {uri: copies.get(uri) for uri in texts_by_uri}
    assert mine == {uri: {"uri": uri, "version": 1, **digest(t)} for uri, t in texts_by_uri.items()}
    for uri in texts_by_uri:
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
        )
    remaining = await server_copy(client)
    assert not set(remaining) & set(texts_by_uri)


@pytest.mark.timeout(60)
async def test_percent_encoded_uris_are_the_same_documents(client: LanguageClient, tmp_path: Path):
    """Editors percent-encode URIs (VS Code: spaces, ``c%3A``); pygls keys documents by the
    decoded form. Lookups with the URI the client sent must find them all the same."""
    folder = tmp_path / "my project (copy)"
    folder.mkdir()
    other = folder / "registry.py"
    other_text = (
        "def register(registry, handler):\n    registry.add(handler.with_retry(attempts=3))\n"
    )
    open_text(client, other.as_uri(), other_text)
    main = folder / "main.py"
    text = "def setup(registry, handler):\n    registry.add(handler.with_"
    uri = main.as_uri()
    assert "%20" in uri and "%28" in uri
    open_text(client, uri, text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(2, uri),
            [Edit(1, 10**6, 1, 10**6, "").change()],
        )
    )
    assert await server_copy(client, uri) == {"uri": uri, "version": 2, **digest(text)}
    result = await request_completion(client, uri, 1, len("    registry.add(handler.with_"))
    assert [item.insert_text for item in result.items][:1] == ["retry(attempts=3))"]


# --- malformed JSON-RPC over raw stdio -----------------------------------------------------------


class RawServer:
    """The server on a pipe we write raw bytes to."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> RawServer:
        process = await asyncio.create_subprocess_exec(
            server_executable(),
            "serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    async def send(self, message: Any) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        await self.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        stream = self.process.stdout
        assert stream is not None

        async def one() -> dict[str, Any]:
            length = 0
            while (line := await stream.readline()).strip():
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if not length:
                raise EOFError("the server closed its output")
            return dict(json.loads(await stream.readexactly(length)))

        return await asyncio.wait_for(one(), timeout)

    async def answer_to(self, request_id: int, timeout: float = 10.0) -> dict[str, Any]:
        """The response to ``request_id``; notifications and server requests are skipped."""
        while True:
            message = await self.receive(timeout)
            if "method" in message:
                continue
            if message.get("id") == request_id:
                return message

    async def stop(self) -> int:
        if self.process.returncode is None:
            try:
                await self.send({"jsonrpc": "2.0", "id": 999_999, "method": "shutdown"})
                await self.answer_to(999_999, timeout=10)
                await self.send({"jsonrpc": "2.0", "method": "exit"})
                await asyncio.wait_for(self.process.wait(), 10)
            finally:
                if self.process.returncode is None:
                    self.process.kill()
                    await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


@pytest.fixture
async def raw() -> Any:
    server = await RawServer.start()
    await server.send(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {"processId": None, "rootUri": None, "capabilities": {}},
        }
    )
    assert "result" in await server.answer_to(0, timeout=30)
    await server.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    yield server
    await server.stop()


async def still_serving(server: RawServer, request_id: int) -> None:
    await server.send(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "workspace/executeCommand",
            "params": {"command": "ghostcomplete.status", "arguments": []},
        }
    )
    answer = await server.answer_to(request_id)
    assert answer["result"]["kind"] in ("Normal", "Warning"), answer


COMPLETION = "textDocument/inlineCompletion"
MALFORMED: list[tuple[str, Any]] = [
    ("invalid JSON", b"{this is not json"),
    ("truncated JSON", b'{"jsonrpc": "2.0", "id": 5, "method": "initi'),
    ("JSON but not an object", b"[1, 2, 3]"),
    ("a JSON string", b'"hello"'),
    ("not UTF-8", b'{"jsonrpc": "2.0", "method": "\xff\xfe"}'),
    ("no method, no id", {"jsonrpc": "2.0", "params": {}}),
    ("unknown notification", {"jsonrpc": "2.0", "method": "foo/bar", "params": [1]}),
    ("response to nothing", {"jsonrpc": "2.0", "id": 77, "result": {"x": 1}}),
    ("didOpen without params", {"jsonrpc": "2.0", "method": "textDocument/didOpen"}),
    (
        "didOpen with wrong types",
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": 5}},
    ),
    (
        "didChange of a document never opened",
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": "file:///never.py", "version": 2},
                "contentChanges": [{"text": "x"}],
            },
        },
    ),
    (
        "didChange with a range of strings",
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": "file:///raw.py", "version": 3},
                "contentChanges": [{"range": {"start": "a", "end": None}, "text": 5}],
            },
        },
    ),
    (
        "didChange with negative positions",
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": "file:///raw.py", "version": 4},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": -1, "character": -5},
                            "end": {"line": -1, "character": -1},
                        },
                        "text": "neg",
                    }
                ],
            },
        },
    ),
    (
        "didClose of nothing",
        {"jsonrpc": "2.0", "method": "textDocument/didClose", "params": {"textDocument": {}}},
    ),
    (
        "didFocus with junk",
        {"jsonrpc": "2.0", "method": "textDocument/didFocus", "params": [None, 3]},
    ),
    (
        "didShowCompletion with junk",
        {"jsonrpc": "2.0", "method": "textDocument/didShowCompletion", "params": {"item": 3}},
    ),
    (
        "didPartiallyAccept with junk",
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didPartiallyAcceptCompletion",
            "params": {"item": {"command": 5}, "acceptedLength": "x"},
        },
    ),
    (
        "configuration push of junk",
        {
            "jsonrpc": "2.0",
            "method": "workspace/didChangeConfiguration",
            "params": {"settings": {"ghostcomplete": [1, {"x": None}]}},
        },
    ),
    ("cancel of nothing", {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 4242}}),
    ("cancel with junk", {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": "x"}),
]


def _requests() -> list[tuple[str, dict[str, Any]]]:
    position = {"line": 0, "character": 1}
    return [
        ("unknown method", {"method": "foo/bar", "params": {}}),
        ("completion without params", {"method": COMPLETION}),
        ("completion with params of the wrong type", {"method": COMPLETION, "params": [1, 2]}),
        (
            "completion with a position of strings",
            {
                "method": COMPLETION,
                "params": {
                    "textDocument": {"uri": "file:///raw.py"},
                    "position": {"line": "zero", "character": None},
                    "context": {"triggerKind": 1},
                },
            },
        ),
        (
            "completion with an unknown trigger kind",
            {
                "method": COMPLETION,
                "params": {
                    "textDocument": {"uri": "file:///raw.py"},
                    "position": position,
                    "context": {"triggerKind": 99},
                },
            },
        ),
        (
            "completion with a negative position",
            {
                "method": COMPLETION,
                "params": {
                    "textDocument": {"uri": "file:///raw.py"},
                    "position": {"line": -3, "character": -9},
                    "context": {"triggerKind": 1},
                },
            },
        ),
        (
            "executeCommand of an unknown command",
            {"method": "workspace/executeCommand", "params": {"command": "nope", "arguments": []}},
        ),
        (
            "accept with junk",
            {
                "method": "workspace/executeCommand",
                "params": {"command": "ghostcomplete.accept", "arguments": [{"x": 1}, 5]},
            },
        ),
        (
            "debugDocument with junk",
            {
                "method": "workspace/executeCommand",
                "params": {"command": DEBUG_DOCUMENT, "arguments": [5]},
            },
        ),
        ("a string id", {"id": "abc", "method": "foo/bar"}),
    ]


@pytest.mark.timeout(60)
async def test_malformed_messages_are_ignored_or_answered_with_errors(raw: RawServer):
    await raw.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {
                    "uri": "file:///raw.py",
                    "languageId": "python",
                    "version": 1,
                    "text": "import os\nos.pa",
                }
            },
        }
    )
    for number, (name, message) in enumerate(MALFORMED, start=1):
        await raw.send(message)
        await still_serving(raw, 1000 + number)
        assert raw.process.returncode is None, name
    for number, (name, request) in enumerate(_requests(), start=1):
        request_id: Any = request.pop("id", 2000 + number)
        await raw.send({"jsonrpc": "2.0", "id": request_id, **request})
        answer = await raw.answer_to(request_id)
        assert "result" in answer or "error" in answer, (name, answer)
        await still_serving(raw, 3000 + number)
    assert await raw.stop() == 0


@pytest.mark.timeout(60)
async def test_framing_junk_between_messages(raw: RawServer):
    """Stray header lines, unknown headers, a zero length: skipped, the next message read."""
    await raw.write(b"garbage line\r\n\r\n")
    await raw.write(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n")
    body = b'{"jsonrpc": "2.0", "method": "foo/baz"}'
    await raw.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await raw.write(b"Content-Length: 0\r\n\r\n")
    await still_serving(raw, 1)
    assert await raw.stop() == 0


@pytest.mark.timeout(60)
async def test_a_huge_content_length_does_not_kill_the_server():
    """A length no client will ever fill must not be allocated up front: the server waits for
    the body like for any other and ends normally when the client goes away."""
    server = await RawServer.start()
    try:
        await server.send(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {"processId": None, "capabilities": {}},
            }
        )
        assert "result" in await server.answer_to(0, timeout=30)
        await server.write(b"Content-Length: 999999999999\r\n\r\n{}")
        await asyncio.sleep(1.0)
        assert server.process.returncode is None, "the server died on a huge Content-Length"
        assert server.process.stdin is not None
        server.process.stdin.close()
        await asyncio.wait_for(server.process.wait(), 15)
        assert server.process.stderr is not None
        errors = (await server.process.stderr.read()).decode("utf-8", "replace")
        assert "MemoryError" not in errors, errors
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


# --- nothing sent that should not be -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = _free_port()
AWS_KEY = "AKIA" + "Q3EGRZ7TNVXKW5HP"
GITHUB_TOKEN = "ghp_" + "x9Yk2Lm8Qw4Er6Ty1Ui3Op5As7Df0Gh2Jk4L"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "-----END RSA PRIVATE KEY-----"
)
EXCLUDED_MARK = "EXCLUDED_CANARY_7f3a"


async def recording_answer(request: Recorded, reply: Reply) -> None:
    await reply.json({"choices": [{"index": 0, "text": "result"}]})


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[server_executable(), "serve"]))
async def remote(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("project")
    (root / ".git").mkdir()
    (root / ".gitignore").write_text("generated/\n*.local.py\n")
    lsp_client.root = root  # type: ignore[attr-defined]
    http = {"url": f"http://127.0.0.1:{PORT}/v1", "model": "fake", "fimFamily": "qwen"}
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(root.as_uri(), "project")],
            initialization_options={
                "backend": {"kind": "http", "http": http},
                "completion": {"disabledLanguages": ["markdown"], "disabledFiles": ["**/*.gen.py"]},
            },
        )
    )
    yield
    await lsp_client.shutdown_session()


EXCLUDED_FILES = [
    ".env",
    ".env.production",
    "server.pem",
    "tls/server.key",
    "id_rsa",
    "id_rsa.pub",
    "cert.p12",
    "secrets/config.py",
    "generated/models.py",  # .gitignore
    "settings.local.py",  # .gitignore
]


@pytest.mark.timeout(60)
async def test_excluded_files_and_secrets_never_reach_the_remote_model(remote: LanguageClient):
    root: Path = remote.root  # type: ignore[attr-defined]
    model = await FakeModelServer(recording_answer).start(PORT)
    try:
        # Excluded files hold a canary and share words with the current file, so that the
        # snippet ranker would pick them if it could see them.
        canary = (
            f"def compute_total(items):\n    token = '{EXCLUDED_MARK}'\n    return sum(items)\n"
        )
        for relative in EXCLUDED_FILES:
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(canary)
            open_text(remote, path.as_uri(), canary)
            # Completing inside an excluded file asks nothing of the model.
            answer = await request_completion(remote, path.as_uri(), 2, len("    return sum"))
            assert answer is None or not answer.items
        assert model.requests == [], [r.path for r in model.requests]

        # Disabled by language and by file: nothing asked either.
        notes = root / "README.md"
        open_text(remote, notes.as_uri(), "compute_total(items) returns sum", language="markdown")
        answer = await request_completion(remote, notes.as_uri(), 0, 10)
        assert answer is None or not answer.items
        # (A disabled file is not excluded: it may still serve as context, so no canary.)
        generated = root / "schema.gen.py"
        open_text(remote, generated.as_uri(), "def schema_version():\n    return 3\n")
        answer = await request_completion(remote, generated.as_uri(), 1, len("    return"))
        assert answer is None or not answer.items
        assert model.requests == []

        # An ordinary file with secrets in it: the model is asked, the secrets are redacted.
        text = (
            f"AWS_ACCESS_KEY_ID = '{AWS_KEY}'\n"
            f"GITHUB_TOKEN = '{GITHUB_TOKEN}'\n"
            f'KEY = """{PRIVATE_KEY}"""\n'
            "password = 'hunter2-but-longer-value'\n"
            "\ndef compute_total(items):\n    token = '"
        )
        main = root / "main.py"
        main.write_text(text)
        open_text(remote, main.as_uri(), text)
        await request_completion(remote, main.as_uri(), text.count("\n"), len("    token = '"))
        assert await model.wait_for(lambda: bool(model.requests))
    finally:
        await model.close()
    sent = b"".join(request.raw_body for request in model.requests).decode()
    for secret in (AWS_KEY, GITHUB_TOKEN, "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn", "hunter2-but-longer"):
        assert secret not in sent
    assert EXCLUDED_MARK not in sent
    assert "def compute_total(items)" in sent  # the prompt did go out
