"""Secret redaction: the golden corpus (tests/golden/secrets.toml), redaction of parts cut from
a whole source, and the placeholders of edit requests that go back into the answer."""

from __future__ import annotations

import base64
import random
import textwrap
import tomllib
from pathlib import Path

import pytest

from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.edit.prompt import EditContext, redacted, restore_secrets
from ghostcomplete.edit.request import Planned, Selection, edit_context, plan
from ghostcomplete.ranker.redaction import (
    REDACTED,
    Vault,
    redact,
    redact_around_cursor,
    redact_part,
    redact_snippet,
    restore,
)
from ghostcomplete.ranker.snippets import Snippet

CORPUS = tomllib.loads((Path(__file__).parent / "golden" / "secrets.toml").read_text())
SECRETS = CORPUS["secret"]
ORDINARY = CORPUS["ordinary"]


def test_the_corpus_is_large_enough() -> None:
    assert len(SECRETS) >= 50 and len(ORDINARY) >= 50


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=f"secret: {c['name']}") for c in SECRETS]
    + [pytest.param(c, id=f"ordinary: {c['name']}") for c in ORDINARY],
)
def test_golden(case: dict) -> None:
    text, count = redact(case["text"])
    if "gone" not in case:
        assert (text, count) == (case["text"], 0)
        return
    assert count >= 1 and REDACTED in text
    for secret in case["gone"]:
        assert secret not in text, text
    for kept in case.get("kept", []):
        assert kept in text, text


def fake_key(lines: int = 25, seed: int = 7) -> tuple[str, list[str]]:
    """A PEM block of random base64 (the shape of a key; no key at all) and its body lines."""
    rng = random.Random(seed)
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(lines * 48 - 10))).decode()
    rows = textwrap.wrap(body, 64)
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(rows) + "\n-----END PRIVATE KEY-----", rows


KEY, KEY_LINES = fake_key()
DOCUMENT = f'import ssl\n\nKEY = """{KEY}"""\n\n\ndef context():\n    return ssl.create(KEY)\n'


@pytest.mark.parametrize("cut", range(len(DOCUMENT.split("\n"))))
def test_a_part_cut_from_the_document_never_holds_a_line_of_the_key(cut: int) -> None:
    """Whatever line the budget starts the prefix at, no line of the key survives: the
    secrets are found in the whole text first."""
    start = sum(len(line) + 1 for line in DOCUMENT.split("\n")[:cut])
    part, _ = redact_part(DOCUMENT, start, len(DOCUMENT))
    assert not [line for line in KEY_LINES if line in part]
    # And the part alone (a snippet whose source is unknown) loses its key lines too.
    alone, _ = redact(DOCUMENT[start:])
    assert not [line for line in KEY_LINES if line in alone]


def test_a_cut_through_a_secret_redacts_both_sides() -> None:
    text = 'token = "ghp_R2d2C3p0Lk9Jh8Gf7Ds6Aa5Qw4Er3Ty2Ui1O"\n'
    middle = text.index("Lk9")
    prefix, suffix, _ = redact_around_cursor(text, middle, [], {})
    assert prefix == 'token = "' + REDACTED and suffix == REDACTED + '"\n'


def test_snippets_are_redacted_with_their_whole_file() -> None:
    lines = DOCUMENT.split("\n")
    # A chunk that starts in the middle of the key and ends in it: two short base64 lines.
    start = lines.index(KEY_LINES[-2])
    chunk = "\n".join(lines[start : start + 2])
    snippet = Snippet("file:///w/keys.py", start, chunk, 1.0)
    hidden = redact_snippet(snippet, {"file:///w/keys.py": DOCUMENT})
    assert not [line for line in KEY_LINES if line in hidden.text]
    assert hidden.text.count(REDACTED) == 1


def test_vault_gives_each_secret_its_own_placeholder_and_restores_them() -> None:
    text = 'a = "AKIAZ7Q3XK2LMN4OPQ5R"\nb = "AKIAZ7Q3XK2LMN4OPQ5R"\npassword = "hunter2"\n'
    vault = Vault(avoid="<redacted-1> is already in the file")
    hidden, count = redact_part(text, vault=vault)
    assert count == 3 and "AKIA" not in hidden and "hunter2" not in hidden
    assert hidden == 'a = "<redacted-2>"\nb = "<redacted-2>"\npassword = "<redacted-3>"\n'
    assert restore(hidden, vault.secrets) == text
    assert restore("<redacted-1> <redacted-9>", vault.secrets) == "<redacted-1> <redacted-9>"


SOURCE = (
    "import boto3\n"
    "\n"
    "def client():\n"
    '    key = "AKIAZ7Q3XK2LMN4OPQ5R"\n'
    '    password = "hunter2"\n'
    "    return boto3.client(key, password)\n"
)


def selection_of(text: str, first: str, last: str) -> Selection:
    document = DocumentSnapshot("file:///w/aws.py", "python", text, 1)
    start = text.index(first)
    end = text.index(last) + len(last)
    return Selection(document, "rename key to access_key", start, end)


def test_edit_context_hides_the_selection_and_the_answer_gets_the_secrets_back() -> None:
    selection = selection_of(SOURCE, "    key =", "password)\n")
    context = edit_context(selection, (), context_lines=3, remote=True)
    assert "AKIA" not in context.selection and "hunter2" not in context.selection
    assert "AKIA" not in context.before + context.after
    answer = (
        "```python\n"
        f"access_key = {context.selection.split('key = ', 1)[1].split(chr(10))[0]}\n"
        'password = "<redacted-2>"\n'
        "return boto3.client(access_key, password)\n"
        "```\n"
    )
    planned = plan(answer, selection, context)
    assert isinstance(planned, Planned)
    change = planned.change
    edited = selection.text[: change.start] + change.replacement + selection.text[change.end :]
    assert edited == (
        '    access_key = "AKIAZ7Q3XK2LMN4OPQ5R"\n'
        '    password = "hunter2"\n'
        "    return boto3.client(access_key, password)\n"
    )


def test_local_edit_context_is_not_redacted() -> None:
    selection = selection_of(SOURCE, "    key =", "password)\n")
    context = edit_context(selection, (), context_lines=3, remote=False)
    assert "AKIAZ7Q3XK2LMN4OPQ5R" in context.selection and not context.secrets


def test_a_multi_line_key_in_the_selection_comes_back_whole() -> None:
    text = f'def load():\n    pem = """{KEY}"""\n    return pem\n'
    selection = selection_of(text, "    pem =", "return pem\n")
    context = edit_context(selection, (), context_lines=2, remote=True)
    assert not [line for line in KEY_LINES if line in context.selection]
    [placeholder] = context.secrets
    answer = f'```python\nkey_pem = """{placeholder}"""\nreturn key_pem\n```'
    planned = plan(answer, selection, context)
    assert isinstance(planned, Planned)
    change = planned.change
    edited = selection.text[: change.start] + change.replacement + selection.text[change.end :]
    assert edited == f'    key_pem = """{KEY}"""\n    return key_pem\n'


def test_redacted_snippets_share_the_placeholders() -> None:
    context = EditContext(
        "x",
        "python",
        "p.py",
        "",
        'key = "AKIAZ7Q3XK2LMN4OPQ5R"',
        "",
        (Snippet("file:///w/other.py", 0, 'KEY = "AKIAZ7Q3XK2LMN4OPQ5R"', 1.0),),
    )
    document = context.selection
    hidden = redacted(context, document, 0, {})
    assert hidden.selection == 'key = "<redacted-1>"'
    assert hidden.snippets[0].text == 'KEY = "<redacted-1>"'
    assert restore_secrets(hidden.selection, hidden) == context.selection
