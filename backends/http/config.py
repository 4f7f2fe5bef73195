"""Settings of the http backend (``backend.http``): where the model server is and how to talk
to it.

``url`` is the server's base address (``http://127.0.0.1:8080``, ``https://api.example/v1``)
or the full endpoint address; each API appends its own endpoint path to a base address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ghostcomplete.backends.setting_checks import (
    check,
    is_env_name,
    is_header_name,
    is_header_value,
    is_headers,
    is_http_address,
    is_path,
)
from ghostcomplete.ranker.prompt import TEMPLATES

# The closed set of wire formats (backends/http/adapters.py has one adapter for each).
APIS = ("openai", "llamacpp", "ollama", "codestral", "tgi")


_ADDRESS = "an http:// or https:// address with a host and a port between 1 and 65535"


@dataclass(frozen=True)
class HttpSettings:
    # openai: /v1/completions (vLLM, SGLang, llama.cpp server, DeepSeek, Together, ...);
    # llamacpp: /infill; ollama: /api/generate; codestral: /v1/fim/completions; tgi: /generate.
    api: str = field(
        default="openai", metadata=check(lambda v: v in APIS, "one of " + ", ".join(APIS))
    )
    url: str = field(
        default="", metadata=check(lambda v: v == "" or is_http_address(v), "empty or " + _ADDRESS)
    )
    # The model name the server expects (required by Ollama, hosted APIs and multi-model servers).
    model: str = ""
    # Render the fill-in-the-middle prompt here, in this family's format, and send it as one
    # prompt. None: send prefix and suffix apart and let the server format them (the model's
    # own template). The tgi API always needs a family (starcoder when none is set).
    fim_family: str | None = field(
        default=None,
        metadata=check(
            lambda v: v is None or v in TEMPLATES, "null or one of " + ", ".join(TEMPLATES)
        ),
    )
    # The API key: the name of an environment variable that holds it (preferred), or the key.
    api_key_env: str = field(
        default="",
        metadata=check(lambda v: v == "" or is_env_name(v), "an environment variable's name"),
    )
    api_key: str = field(
        default="", metadata=check(is_header_value, "visible ASCII characters (a header value)")
    )
    # The header the key goes in; "Authorization" sends "Bearer <key>", others the bare key.
    api_key_header: str = field(
        default="Authorization",
        metadata=check(lambda v: v == "" or is_header_name(v), "an HTTP header name"),
    )
    # Extra request headers (their values are treated as secrets too).
    headers: dict[str, str] = field(
        default_factory=dict,
        metadata=check(is_headers, "HTTP header names with values of visible ASCII characters"),
    )
    # Stream the answer and stop reading (closing the connection) once the line or block is
    # complete; off: wait for the whole answer.
    stream: bool = True
    temperature: float = field(
        default=0.0, metadata=check(lambda v: 0.0 <= v <= 2.0, "between 0 and 2")
    )
    # Upper bound on generated tokens; 0: derived from completion.maxChars.
    max_tokens: int = field(
        default=0, metadata=check(lambda v: 0 <= v <= 8192, "between 0 and 8192")
    )
    # A proxy for this backend ("http://proxy.corp:3128"); null: HTTPS_PROXY/HTTP_PROXY/NO_PROXY
    # from the environment apply.
    proxy: str | None = field(
        default=None,
        metadata=check(lambda v: v is None or is_http_address(v), "null or " + _ADDRESS),
    )
    # A PEM file of certificate authorities to trust (corporate TLS inspection); null: the
    # bundled certifi roots (or SSL_CERT_FILE).
    ca_bundle: str | None = field(default=None, metadata=check(is_path, "null or a file path"))
    # Verify TLS certificates. Turn off only for a server you trust on a network you trust.
    verify_tls: bool = True
    # Seconds to wait after a 429/503 without Retry-After before asking again.
    default_backoff_s: float = field(
        default=10.0, metadata=check(lambda v: 0.0 <= v <= 3600, "between 0 and 3600")
    )
