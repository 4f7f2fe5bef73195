"""The one httpx client of an http backend: API key, extra headers, proxy, CA bundle, TLS.

Secrets (the key and every extra header value) are remembered only so that they can be
scrubbed from anything we say; they are never logged.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Mapping

import httpx

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.http.config import HttpSettings


class Secrets:
    """Replaces every secret in a text with ``***``."""

    def __init__(self, values: tuple[str, ...]) -> None:
        found: set[str] = set()
        for value in values:
            if len(value) >= 4:
                found.add(value)
                if value.startswith("Bearer "):
                    found.add(value[len("Bearer ") :])
        # Longest first, so that "Bearer <key>" goes before "<key>".
        self._values = sorted(found, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text


def resolve_api_key(settings: HttpSettings, environ: Mapping[str, str]) -> str:
    """The key from the variable that ``apiKeyEnv`` names, else ``apiKey`` ("" for none)."""
    if settings.api_key_env:
        key = environ.get(settings.api_key_env, "")
        if not key:
            raise BackendError(
                f"the environment variable {settings.api_key_env} (backend.http.apiKeyEnv) "
                "that should hold the API key is not set"
            )
        return key
    return settings.api_key


def tls_verify(settings: HttpSettings) -> ssl.SSLContext | bool:
    if not settings.verify_tls:
        return False
    if settings.ca_bundle:
        try:
            return ssl.create_default_context(cafile=os.path.expanduser(settings.ca_bundle))
        except (OSError, ssl.SSLError) as error:
            raise BackendError(
                f"cannot use the CA bundle {settings.ca_bundle} (backend.http.caBundle): {error}"
            ) from None
    return True


def build_client(
    settings: HttpSettings,
    environ: Mapping[str, str],
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[httpx.AsyncClient, Secrets]:
    """A keep-alive client for the backend's server, and the secrets it sends."""
    key = resolve_api_key(settings, environ)
    headers = dict(settings.headers)
    if key:
        header = settings.api_key_header or "Authorization"
        headers[header] = f"Bearer {key}" if header.lower() == "authorization" else key
    client = httpx.AsyncClient(
        # HTTP/2 (over TLS, where the server offers it) when the optional h2 package is there:
        # an early stop then resets one stream instead of closing the connection.
        http2=importlib.util.find_spec("h2") is not None,
        headers=headers,
        verify=tls_verify(settings),
        proxy=settings.proxy,
        transport=transport,
        # HTTPS_PROXY / NO_PROXY / SSL_CERT_FILE from the environment apply unless overridden.
        trust_env=True,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8, keepalive_expiry=60),
    )
    return client, Secrets((key, *headers.values()))
