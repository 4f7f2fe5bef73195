"""The validation a settings field carries: ``field(metadata=between(0, 20))``.

completion/settings.py checks every value it parses against its field's ``check``: a predicate and
the words that complete "… must be …" in the message a user sees when it fails. A predicate
that raises counts as a failed check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

# RFC 9110 field names ("tokens") and the header values an HTTP/1.1 library will send as they
# are: visible ASCII, spaces and tabs. Anything else (non-ASCII, CR/LF) fails only later, when
# the client is built or the first request is sent.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check(predicate: Callable[[Any], bool], description: str) -> dict[str, Any]:
    return {"check": (predicate, description)}


def between(low: float, high: float) -> dict[str, Any]:
    return check(lambda value: low <= value <= high, f"between {low} and {high}")


def zero_or_between(low: float, high: float) -> dict[str, Any]:
    """0, which means "decided for you", or a value in the range."""
    return check(lambda value: value == 0 or low <= value <= high, f"0 or between {low} and {high}")


def one_of(*choices: str) -> dict[str, Any]:
    return check(lambda value: value in choices, "one of " + ", ".join(choices))


def is_http_address(value: str) -> bool:
    """An http(s) address with a host and, if any, a port in 1..65535 (urllib raises on a port
    out of range, a port that is not a number and an unclosed IPv6 bracket)."""
    if not value.startswith(("http://", "https://")) or not is_header_value(value):
        return False
    if any(character.isspace() for character in value):
        return False
    parts = urlsplit(value)
    port = parts.port  # raises ValueError on a bad port
    return bool(parts.hostname) and (port is None or port > 0)


def is_header_name(value: str) -> bool:
    return _HEADER_NAME.fullmatch(value) is not None


def is_header_value(value: str) -> bool:
    return _HEADER_VALUE.fullmatch(value) is not None


def is_headers(value: dict[str, str]) -> bool:
    return all(is_header_name(name) and is_header_value(text) for name, text in value.items())


def is_env_name(value: str) -> bool:
    return _ENV_NAME.fullmatch(value) is not None


def is_path(value: str | None) -> bool:
    """A file-system path the OS can take: no NUL byte, encodable in the file-system encoding."""
    if value is None:
        return True
    if "\x00" in value:
        return False
    os.fsencode(value)  # raises on a lone surrogate that is not an escaped byte
    return True
