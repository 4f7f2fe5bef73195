"""A mis-framed message must not leave the server deaf, and nothing but initialize is served
before initialize: raw bytes on the real server's stdin, framed answers read from stdout."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raw_lsp import RawLsp

from ghostcomplete.server.framing import Deframer


def _status_request(request_id: int) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "workspace/executeCommand",
            "params": {"command": "ghostcomplete.status", "arguments": []},
        },
        ensure_ascii=False,
    ).encode()


def _framed(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


# A request whose answer proves it was read whole, with non-ASCII text in it.
NON_ASCII = _status_request(7).replace(
    b'"arguments": []', '"arguments": ["héllo wörld ✓"]'.encode()
)
NOTIFICATION = json.dumps(
    {"jsonrpc": "2.0", "method": "foo/bar", "params": {"note": "ünïcødé"}}, ensure_ascii=False
).encode()

# name -> (the bad bytes, the id of a request in them the server should still answer, or None)
MISFRAMED: dict[str, tuple[bytes, int | None]] = {
    "length counted in characters": (
        b"Content-Length: %d\r\n\r\n" % len(NON_ASCII.decode()) + NON_ASCII,
        7,
    ),
    "lowercase content-length": (b"content-length: %d\r\n\r\n" % len(NON_ASCII) + NON_ASCII, 7),
    "LF-only framing": (b"Content-Length: %d\n\n" % len(NON_ASCII) + NON_ASCII, 7),
    "odd header spacing and case": (b"CONTENT-LENGTH:%d \r\n\r\n" % len(NON_ASCII) + NON_ASCII, 7),
    "length too short": (
        b"Content-Length: %d\r\n\r\n" % (len(NOTIFICATION) - 9) + NOTIFICATION,
        None,
    ),
    "length too long by a little": (
        b"Content-Length: %d\r\n\r\n" % (len(NOTIFICATION) + 5) + NOTIFICATION,
        None,
    ),
    "length too long by a lot": (
        b"Content-Length: %d\r\n\r\n" % (len(NOTIFICATION) + 500) + NOTIFICATION,
        None,
    ),
    "junk body then a header": (b"Content-Length: 10\r\n\r\n" + b"\x00\xff" * 40, None),
}


@pytest.fixture(scope="module")
def server():
    with RawLsp() as raw:
        assert "result" in raw.initialize()
        yield raw


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(MISFRAMED))
def test_a_misframed_message_does_not_leave_the_server_deaf(server: RawLsp, name: str) -> None:
    bad, answered = MISFRAMED[name]
    request_id = 100 + list(MISFRAMED).index(name)
    server.write(bad + _framed(_status_request(request_id)))
    if answered is not None:
        assert server.answer_to(answered)["result"]["kind"] in ("Normal", "Warning")
    assert server.answer_to(request_id)["result"]["kind"] in ("Normal", "Warning"), name
    # ... and the next message, framed properly, too.
    assert "result" in server.status(request_id + 1000)


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_a_request_framed_in_characters_is_answered_on_its_own() -> None:
    """The client waits for the answer and sends nothing else: the body is mended from the
    bytes that follow the short length."""
    with RawLsp() as server:
        assert "result" in server.initialize()
        server.write(b"Content-Length: %d\r\n\r\n" % len(NON_ASCII.decode()) + NON_ASCII)
        assert server.answer_to(7)["result"]["kind"] in ("Normal", "Warning")
        assert server.stop() == 0
        logged = [line for line in server.stderr.splitlines() if "framing error" in line]
        assert len(logged) == 1, server.stderr  # once, not per byte


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_requests_before_initialize_answer_server_not_initialized() -> None:
    with RawLsp() as server:
        answer = server.request(1, "workspace/executeCommand", {"command": "ghostcomplete.status"})
        assert answer["error"]["code"] == -32002, answer
        answer = server.request(
            2,
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": "file:///early.py"},
                "position": {"line": 0, "character": 1},
                "context": {"triggerKind": 1},
            },
        )
        assert answer["error"]["code"] == -32002, answer
        server.send(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {
                    "textDocument": {
                        "uri": "file:///early.py",
                        "languageId": "python",
                        "version": 1,
                        "text": "x = 1\n",
                    }
                },
            }
        )  # dropped, as LSP says
        assert "result" in server.initialize(request_id=3)
        assert "result" in server.status(4)
        assert server.stop() == 0
        assert "Traceback" not in server.stderr, server.stderr


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_a_second_initialize_is_refused_and_does_not_reapply_settings() -> None:
    with RawLsp() as server:
        assert "result" in server.initialize({"backend": {"kind": "lookup"}})
        second = server.request(
            1,
            "initialize",
            {
                "processId": None,
                "rootUri": None,
                "capabilities": {},
                "initializationOptions": {"backend": {"kind": "http"}},
            },
        )
        assert second["error"]["code"] == -32600, second
        status = server.status(2)["result"]
        assert status["backend"] == "lookup", status
        assert server.stop() == 0


# --- the deframer alone ------------------------------------------------------------------------


def _bodies(stream: bytes, pieces: list[int] | None = None) -> tuple[list[Any], list[str]]:
    problems: list[str] = []
    deframer = Deframer(problems.append)
    bodies: list[Any] = []
    cuts = sorted({0, len(stream), *(piece % (len(stream) + 1) for piece in pieces or [])})
    for start, end in itertools.pairwise(cuts):
        deframer.feed(stream[start:end])
        while (body := deframer.next_body()) is not None:
            bodies.append(json.loads(body))
    deframer.feed(b"")
    while (body := deframer.next_body()) is not None:
        bodies.append(json.loads(body))
    return bodies, problems


def test_well_framed_messages_pass_without_a_word() -> None:
    stream = _framed(NON_ASCII) + b"Content-Type: x\r\n" + _framed(NOTIFICATION)
    assert _bodies(stream) == ([json.loads(NON_ASCII), json.loads(NOTIFICATION)], [])


@pytest.mark.parametrize("name", list(MISFRAMED))
def test_each_misframing_costs_at_most_the_bad_message(name: str) -> None:
    bad, _ = MISFRAMED[name]
    good = _status_request(1)
    bodies, problems = _bodies(bad + _framed(good))
    assert bodies[-1] == json.loads(good)
    assert len(problems) <= 1, problems


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(MISFRAMED)), st.lists(st.integers(0, 10_000), max_size=6))
def test_however_the_bytes_arrive(name: str, pieces: list[int]) -> None:
    bad, _ = MISFRAMED[name]
    good = _status_request(1)
    stream = _framed(good) + bad + _framed(good)
    bodies, _ = _bodies(stream, pieces)
    assert bodies[0] == bodies[-1] == json.loads(good)
