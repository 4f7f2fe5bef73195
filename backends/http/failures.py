"""What went wrong with a model server, in words a user can act on.

Every message names the server by its address without credentials or query, and passes
through ``Secrets.scrub`` wherever it quotes the server.
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from ghostcomplete.backends.http.client import Secrets
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.backends.http.stream import MalformedAnswer, parse_json

MAX_BACKOFF_S = 600.0


def redacted_url(url: str) -> str:
    """``url`` without credentials or query (where keys like to hide)."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if parsed.port:
        host = f"{host}:{parsed.port}"
    return parsed._replace(netloc=host, query="", fragment="").geturl()


def retry_after_seconds(value: str | None, default: float, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), bounded."""
    if value:
        value = value.strip()
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value).timestamp()
            except (TypeError, ValueError):
                seconds = default
            else:
                seconds = when - (time.time() if now is None else now)
        if math.isfinite(seconds):
            return min(max(seconds, 0.0), MAX_BACKOFF_S)
    return min(default, MAX_BACKOFF_S)


def error_detail(raw: bytes) -> str:
    """A short, one-line reason from an error body (JSON ``error``/``message`` or text)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        value: Any = parse_json(text, "error") if text.startswith(("{", "[")) else None
    except MalformedAnswer:
        value = None
    if isinstance(value, dict):
        found = value.get("error") or value.get("message") or value.get("detail")
        if isinstance(found, dict):
            found = found.get("message") or found
        if found:
            text = str(found)
    return " ".join(text.split())[:200]


@dataclass(frozen=True)
class StatusFailure:
    message: str
    # Seconds not to ask again (429/503), else None.
    backoff_s: float | None = None


def status_failure(
    response: httpx.Response,
    body: bytes,
    where: str,
    settings: HttpSettings,
    secrets: Secrets,
    chat: bool = False,
) -> StatusFailure:
    """The failure an HTTP status other than 200 means (``chat``: to an edit request's chat
    completion, at ``where``)."""
    status = response.status_code
    detail = secrets.scrub(error_detail(body))
    said = f": {detail}" if detail else ""
    if status in (429, 503):
        wait = retry_after_seconds(response.headers.get("retry-after"), settings.default_backoff_s)
        what = "rate-limited us" if status == 429 else "is overloaded"
        return StatusFailure(
            f"the model server at {where} {what} (HTTP {status}); "
            f"waiting {wait:.0f} s before asking again",
            wait,
        )
    if status in (401, 403):
        if settings.api_key_env:
            source = f"the key in ${settings.api_key_env}"
        elif settings.api_key:
            source = "backend.http.apiKey"
        else:
            source = "no API key (set backend.http.apiKeyEnv)"
        return StatusFailure(
            f"the model server at {where} refused the request (HTTP {status}, unauthorized) "
            f"with {source}{said}"
        )
    if status == 404 and chat:
        return StatusFailure(
            f"the model server at {where} has no such endpoint or model (HTTP 404){said}; "
            "edit requests need a server that answers OpenAI's chat completions at that "
            "address (check backend.http.url and backend.http.model)"
        )
    if status == 404:
        return StatusFailure(
            f"the model server at {where} has no such endpoint or model (HTTP 404){said}; "
            "check backend.http.url, backend.http.api and backend.http.model"
        )
    if 300 <= status < 400:
        location = redacted_url(response.headers.get("location", "?"))
        return StatusFailure(
            f"the model server at {where} redirects (HTTP {status}) to {location}; use that address"
        )
    return StatusFailure(f"the model server at {where} failed (HTTP {status}){said}")


def transport_failure(error: httpx.HTTPError, where: str, secrets: Secrets) -> str:
    """The failure a connection-level error means (nothing usable came back)."""
    reason = secrets.scrub(str(error) or type(error).__name__)
    if isinstance(error, httpx.ProxyError):
        return f"the proxy for {where} refused the connection: {reason}"
    if isinstance(error, httpx.ConnectError):
        if "CERTIFICATE" in reason.upper() or "SSL" in reason.upper():
            return (
                f"TLS verification failed for {where}: {reason}; set backend.http.caBundle "
                "to your organisation's CA certificates"
            )
        return f"cannot reach the model server at {where}: {reason}"
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError):
        return f"the model server at {where} dropped the connection: {reason}"
    return f"the request to the model server at {where} failed: {reason}"
