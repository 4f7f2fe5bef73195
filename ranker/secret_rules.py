"""Where the secrets are in a text: the spans that must never leave the machine.

Three kinds of rule, all written for source code (where false positives cost completion
quality, so each rule wants a shape, a name or a context that says "secret"):

- token shapes that vendors chose to be recognisable (``AKIA…``, ``ghp_…``, ``xoxb-…``, JWTs);
- values whose name says secret (``password = "…"``, ``"Authorization": "Bearer …"``,
  ``PASSWD=…``, ``pwd="…"``), the credentials in URLs (``postgres://user:PW@host``);
- private keys: ``-----BEGIN … PRIVATE KEY-----`` blocks, and key bodies without their header
  (runs of long base64 lines, and what precedes an ``-----END`` line).

Named values keep their name: only the value is a span, so the model still sees what the code
does. Detection is a pure function of the whole text, so that every part cut from the text
later is redacted with the same spans (a part that holds half a key holds half a span).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` is a secret that ``rule`` found."""

    start: int
    end: int
    rule: str


# --- token shapes: the whole match is the secret ---------------------------------------------

# (rule, the literals a match starts with, pattern): a pattern is tried only where one of its
# literals is, which str.find finds far quicker than a regex scan of the whole text.
_SHAPES: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    (
        "AWS access key",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    ),
    (
        "GitHub token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
    ),
    ("GitHub token", ("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b")),
    (
        "GitLab token",
        ("glpat-", "gldt-", "glrt-", "glptt-"),
        re.compile(r"\bgl(?:pat|dt|rt|ptt)-[A-Za-z0-9_-]{20,}"),
    ),
    ("Slack token", ("xox",), re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}")),
    (
        "Slack webhook",
        ("https://hooks.slack.com/",),
        re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}"),
    ),
    ("Google API key", ("AIza",), re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    (
        "Stripe key",
        ("sk_live_", "rk_live_", "sk_test_", "rk_test_"),
        re.compile(r"\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,}"),
    ),
    (
        "OpenAI-style key",
        ("sk-",),
        re.compile(r"\bsk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}"),
    ),
    ("Hugging Face token", ("hf_",), re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("npm token", ("npm_",), re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("PyPI token", ("pypi-",), re.compile(r"\bpypi-AgE[A-Za-z0-9_-]{50,}")),
    ("SendGrid key", ("SG.",), re.compile(r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}")),
    (
        "JWT",
        ("eyJ",),
        re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ),
    (
        "private key",
        ("-----BEGIN",),
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
    ),
)


def _shapes(text: str) -> Iterator[Span]:
    for rule, literals, pattern in _SHAPES:
        for literal in literals:
            for at in _occurrences(text, literal):
                match = pattern.match(text, at)
                if match is not None:
                    yield Span(match.start(), match.end(), rule)


# --- named values: only the value group is the secret -----------------------------------------

# Names that say secret, as the last word of a name (``db_password``, ``dbPassword``,
# ``SECRET_KEY``, ``x-api-key``). Short words (``pwd``, ``pass``, ``pw``) must start the name or
# follow a separator, so ``bypass`` and ``compass`` stay ordinary words.
_LONG_WORDS = (
    r"passw(?:or)?d|passphrase|secret|token|credentials?|"
    r"(?:api|access|secret|private|signing|encryption|master|auth|client)[_-]?key|"
    r"apikey|auth"
)
_SHORT_WORDS = r"pwd|pass|pw"
_SECRET_NAME = re.compile(rf"(?i)(?:{_LONG_WORDS}|(?:^|[_.-])(?:{_SHORT_WORDS}))(?:_?\d+)?$")
# The regexes take any name (cheap to match); _SECRET_NAME then says whether it is a secret's.
_NAME = r"[A-Za-z0-9_.-]+"
_PASSWORD_NAME = re.compile(r"(?i)(?:passw(?:or)?d|passphrase|pwd|pass|pw)(?:_?\d+)?$")

# name = "value", name: 'value', "name": "value", name="value" (a keyword argument),
# name == "value" (a comparison against a hard-coded secret).
_QUOTED = re.compile(
    rf"""(?ix)
    (?<![A-Za-z0-9_.-])(?P<name>{_NAME})["'`]?
    (?:[ \t]*:[ \t]*[A-Za-z_][\w.\[\]|]*[ \t]*(?==))?    # a type annotation
    \s*(?::=|[:=]|==|!=)\s*
    (?:[rbuf]{{0,2}})(?P<quote>["'`])(?P<value>(?:(?!(?P=quote))[^\n\\]|\\.)+)(?P=quote)
    """
)

# NAME=value and name: value with no quotes: .env files, shell, ini, YAML, CLI flags. The value
# is one word to the end of the line, so that code (``password = get()``) stays alone.
_UNQUOTED = re.compile(
    rf"""(?imx)
    ^[ \t]*(?:export[ \t]+|set[ \t]+|ENV[ \t]+)?(?P<name>{_NAME})
    (?P<colon>=|[ \t]*:[ \t]+)(?P<value>[^\s"'`$(){{}}\[\]<>,;]+)[ \t]*\r?$
    """
)
# ``password: str`` is a type annotation, not YAML: after a colon, a bare word is a type.
_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z_.]*")
_FLAG = re.compile(rf"(?x)(?:^|\s)--?(?P<name>{_NAME})[= ](?P<value>[^\s\"'`$(){{}}<>;]+)")

# scheme://user:password@host: only the password goes.
_URL_CREDENTIALS = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"`]*:(?P<value>[^\s@/'\"`]+)@[^\s@/'\"`]"
)

# Authorization: Bearer <token> (headers, dicts, curl lines) and a lone "Bearer <token>".
_SCHEME = r"(?:bearer|basic|token|digest|bot|apikey|key)[ \t]+"
_AUTHORIZATION = re.compile(
    rf"""(?ix)
    authorization["'`]?\]?\s*[:=]\s*(?:["'`][ \t]*(?:{_SCHEME})?|{_SCHEME})
    (?P<value>[^\s"'`{{}}$<>,;]{{4,}})
    """
)
_BEARER = re.compile(r"\bBearer\s+(?P<value>[A-Za-z0-9._~+/-]{16,}=*)")

# Values that are not secrets even under a secret's name: empty, placeholders, templates,
# references to other names.
_PLACEHOLDER = re.compile(
    r"""(?ix)^(?:
        [^A-Za-z0-9]*                          # punctuation only: "", "***", "?"
      | \$.* | \{.*\} | %\(.*\)s | %s | <.*> | \{\{.*\}\}   # templates and placeholders
      | .*\{[A-Za-z_][A-Za-z0-9_.]*\}.*        # an f-string or format field
      | (?-i:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)    # the name of an environment variable
      | .*\.(?:json|ya?ml|pem|key|crt|cer|txt|env|ini|cfg|conf|toml|p12|pfx|gpg)
      | (?:none|null|nil|true|false|undefined|redacted|xxx+|secret|password|token
          |bearer|basic|digest)
    )$"""
)
_MIN_SECRET_CHARS = 6  # for names that are not passwords: ``token = "("`` is a lexer


def _named_value_ok(name: str, value: str) -> bool:
    if not _SECRET_NAME.search(name) or _PLACEHOLDER.match(value) or "<redacted" in value:
        return False
    if _PASSWORD_NAME.search(name):
        return True
    return len(value) >= _MIN_SECRET_CHARS and " " not in value.strip()


# Every named value, URL credential and authorization header holds one of these: the rules
# above run only on the lines that do.
_KEYWORDS = ("pass", "pw", "secret", "token", "credential", "key", "auth", "bearer", "://")


def _occurrences(text: str, literal: str) -> Iterator[int]:
    at = text.find(literal)
    while at >= 0:
        yield at
        at = text.find(literal, at + 1)


def _keyword_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each run of consecutive lines holding a keyword, in order."""
    lower = text.lower()  # str.find is far quicker than a case-blind regex
    lines: set[int] = set()
    for keyword in _KEYWORDS:
        for at in _occurrences(lower, keyword):
            lines.add(text.rfind("\n", 0, at) + 1)
    blocks: list[tuple[int, int]] = []
    for start in sorted(lines):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if blocks and blocks[-1][1] + 1 == start:
            blocks[-1] = (blocks[-1][0], end)
        else:
            blocks.append((start, end))
    return blocks


def _named_values(text: str) -> Iterator[Span]:
    for start, end in _keyword_lines(text):
        yield from _named_values_in(text, start, end)


def _named_values_in(text: str, start: int, end: int) -> Iterator[Span]:
    for pattern, rule in (
        (_QUOTED, "secret value"),
        (_UNQUOTED, "secret value"),
        (_FLAG, "secret value"),
    ):
        for match in pattern.finditer(text, start, end):
            if (
                pattern is _UNQUOTED
                and ":" in match["colon"]
                and _BARE_WORD.fullmatch(match["value"])
            ):
                continue
            if _named_value_ok(match["name"], match["value"]):
                yield Span(match.start("value"), match.end("value"), rule)
    for match in _URL_CREDENTIALS.finditer(text, start, end):
        if not _PLACEHOLDER.match(match["value"]):
            yield Span(match.start("value"), match.end("value"), "URL credentials")
    for pattern in (_AUTHORIZATION, _BEARER):
        for match in pattern.finditer(text, start, end):
            value = match["value"]
            if not _PLACEHOLDER.match(value) and any(c.isalnum() for c in value):
                yield Span(match.start("value"), match.end("value"), "authorization")


# --- key bodies without their header ----------------------------------------------------------

# A line that is nothing but base64 (maybe quoted, maybe with a "\n" escape or a continuation).
_BODY_LINE = re.compile(
    r"""^[ \t]*(?:[bru]?["'`])?(?P<data>[A-Za-z0-9+/]+={0,2})(?:\\n)?["'`]?"""
    r"""[ \t]*[,+\\;]?[ \t]*\r?$"""
)
_END_LINE = re.compile(r"^[ \t]*[\"'`]?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_LONG_BODY_CHARS = 40
_LONG_RUN = re.compile(rf"[A-Za-z0-9+/]{{{_LONG_BODY_CHARS}}}")
# A quoted blob this long of mixed-case base64 is a key or an opaque credential, not code.
_BLOB = re.compile(r"""["'`](?P<value>[A-Za-z0-9+/]{64,}={0,2})(?:\\n)?["'`]""")


def _mixed(data: str) -> bool:
    return (
        any(c.isupper() for c in data)
        and any(c.islower() for c in data)
        and any(c.isdigit() for c in data)
    )


def _line_at(text: str, at: int) -> tuple[int, int]:
    """(start, end) of the line holding ``at``, without its line break."""
    end = text.find("\n", at)
    return text.rfind("\n", 0, at) + 1, len(text) if end < 0 else end


def _line_kind(text: str, start: int, end: int) -> str:
    """ "long" (a long base64 line), "short" (a short one), "end" (an -----END line) or ""."""
    line = text[start:end]
    body = _BODY_LINE.match(line)
    if body is None:
        return "end" if _END_LINE.match(line) else ""
    data = body["data"]
    return "long" if len(data) >= _LONG_BODY_CHARS and _mixed(data) else "short"


def _end_of_marker(text: str, start: int, end: int) -> int:
    marker = _END_LINE.match(text[start:end])
    return start + marker.end() if marker is not None else end


def _key_bodies(text: str) -> Iterator[Span]:
    """What is left of a key whose header was cut off: runs of base64 lines holding a long
    one, and the base64 lines right before an ``-----END`` line."""
    anchors = [m.start() for m in _LONG_RUN.finditer(text)]
    anchors += _occurrences(text, "-----END")
    covered = -1
    for at in sorted(anchors):
        if at <= covered:
            continue
        start, end = _line_at(text, at)
        kind = _line_kind(text, start, end)
        if kind not in ("long", "end"):
            continue
        # Up over the base64 lines above, down over those below and a closing -----END marker
        # (not what follows it on its line: the closing quotes stay code).
        first = start
        while first > 0:
            above = _line_at(text, first - 1)
            if _line_kind(text, *above) not in ("long", "short"):
                break
            first = above[0]
        last = _end_of_marker(text, start, end) if kind == "end" else end
        while kind != "end" and last < len(text):
            below = _line_at(text, last + 1)
            below_kind = _line_kind(text, *below)
            if below_kind not in ("long", "short", "end"):
                break
            last = below[1]
            if below_kind == "end":
                last = _end_of_marker(text, *below)
                break
        covered = last
        yield Span(first, last, "private key body")


def find_secrets(text: str) -> list[Span]:
    """The secrets in ``text``: sorted, overlapping finds merged."""
    found: list[Span] = []
    found.extend(_shapes(text))
    found.extend(_named_values(text))
    found.extend(_key_bodies(text))
    found.extend(
        Span(m.start("value"), m.end("value"), "opaque blob")
        for m in _BLOB.finditer(text)
        if _mixed(m["value"])
    )
    found.sort(key=lambda span: (span.start, -span.end))
    merged: list[Span] = []
    for span in found:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            if span.end > last.end:
                merged[-1] = Span(last.start, span.end, last.rule)
            continue
        merged.append(span)
    return merged
