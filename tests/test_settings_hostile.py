"""Settings that passed validation and still crashed the handler: each is now rejected with one
message naming the setting, the rest still applies, and arbitrary JSON never gets further than
a message."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raw_lsp import RawLsp

from ghostcomplete.backends import BackendError, create_backend
from ghostcomplete.completion.settings import Settings, install_or_fall_back, resolve
from ghostcomplete.context.exclusion import ContentExclusion

HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("backend.http.url", {"backend": {"http": {"url": "http://127.0.0.1:99999"}}}),
    ("backend.http.url", {"backend": {"http": {"url": "http://127.0.0.1:abc/v1"}}}),
    ("backend.http.url", {"backend": {"http": {"url": "http://[::1/v1"}}}),
    ("backend.http.proxy", {"backend": {"http": {"proxy": "http://[::1"}}}),
    ("backend.http.headers", {"backend": {"http": {"headers": {"X-Team": "équipe"}}}}),
    ("backend.http.headers", {"backend": {"http": {"headers": {"X": "a\r\nInjected: 1"}}}}),
    ("backend.http.headers", {"backend": {"http": {"headers": {"bad name": "x"}}}}),
    ("backend.http.apiKey", {"backend": {"http": {"apiKey": "clé-secrète"}}}),
    ("backend.http.apiKeyHeader", {"backend": {"http": {"apiKeyHeader": "X Key"}}}),
    ("backend.http.apiKeyEnv", {"backend": {"http": {"apiKeyEnv": "\ud800"}}}),
    ("backend.http.caBundle", {"backend": {"http": {"caBundle": "/tmp/ca\x00.pem"}}}),
    ("context.exclude", {"context": {"exclude": ["\\"]}}),
    ("completion.disabledFiles", {"completion": {"disabledFiles": ["[z-a]"]}}),
    ("telemetry.path", {"telemetry": {"path": "/tmp/\x00.sqlite3"}}),
]


def _with_kind_and_a_good_value(layer: dict[str, Any]) -> dict[str, Any]:
    """``layer`` plus the http backend chosen and one valid setting beside the bad one."""
    merged = json.loads(json.dumps(layer))
    backend = merged.setdefault("backend", {})
    backend["kind"] = "http"
    backend.setdefault("http", {}).setdefault("url", "http://127.0.0.1:9/v1")
    merged.setdefault("context", {})["recentFiles"] = 7
    return merged


@pytest.mark.parametrize(("name", "layer"), HOSTILE, ids=[ascii(case) for _, case in HOSTILE])
def test_values_that_crashed_are_rejected_by_name(name: str, layer: dict[str, Any]) -> None:
    resolved, errors = resolve(_with_kind_and_a_good_value(layer))
    assert len(errors) == 1 and errors[0].startswith(name + " must be "), errors
    assert resolved.context.recent_files == 7  # the rest still applies
    assert resolved.backend.kind == "http"
    _applies(resolved)


def _applies(resolved: Settings) -> None:
    """What the server does with settings, short of starting it: nothing raises but the
    backend's own BackendError."""
    ContentExclusion(resolved.context.exclude, roots=[Path("/tmp")]).reason("file:///tmp/a.py")
    ContentExclusion(resolved.completion.disabled_files).reason("file:///tmp/a.py")
    if resolved.backend.kind == "http":
        with contextlib.suppress(BackendError):
            create_backend(resolved.backend)
    for path in (resolved.telemetry.path, resolved.context.dense.path):
        if path is not None:
            Path(path).expanduser()


# --- arbitrary JSON ------------------------------------------------------------------------------

_TEXT = st.text(max_size=12) | st.sampled_from(["http://127.0.0.1:8080", "\\", "[z-a]", "é"])
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _value_for(annotation: Any) -> st.SearchStrategy[Any]:
    """Values near the field's type (where crashes hide) and arbitrary JSON."""
    if dataclasses.is_dataclass(annotation):
        return _section(annotation) | _JSON
    origin = typing.get_origin(annotation)
    if origin is tuple:
        near: st.SearchStrategy[Any] = st.lists(_TEXT, max_size=3)
    elif origin is dict:
        near = st.dictionaries(_TEXT, _TEXT, max_size=3)
    elif annotation is bool:
        near = st.booleans()
    elif annotation in (int, float):
        near = st.integers(-(10**6), 10**6) | st.floats(allow_nan=False)
    else:
        near = _TEXT | st.sampled_from(["http", "onnx", "lookup", "openai", "http://[::1]:0"])
    return near | _JSON


def _section(cls: Any) -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    return st.fixed_dictionaries(
        {},
        optional={
            _camel(spec.name): _value_for(hints[spec.name]) for spec in dataclasses.fields(cls)
        },
    ) | st.dictionaries(_TEXT, _JSON, max_size=2)


SETTINGS_JSON = _section(Settings) | _JSON


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SETTINGS_JSON, SETTINGS_JSON)
def test_arbitrary_json_resolves_to_settings_that_apply(first: Any, second: Any) -> None:
    resolved, errors = resolve(first, second)
    assert isinstance(resolved, Settings)
    assert all(isinstance(error, str) and error.isascii() for error in errors)
    _applies(resolved)


# --- the net under validation --------------------------------------------------------------------


def test_a_value_that_raises_on_install_is_named_and_the_rest_applies() -> None:
    new, _ = resolve({"context": {"recentFiles": 3}, "completion": {"maxChars": 99}})
    installed: list[Settings] = []

    def install(candidate: Settings) -> None:
        if candidate.completion.max_chars == 99:
            raise ValueError("ninety-nine")
        installed.append(candidate)

    result, errors = install_or_fall_back(new, Settings(), install)
    assert errors == ["completion.maxChars could not be applied (ValueError: ninety-nine)"]
    assert result.context.recent_files == 3 and result.completion.max_chars == 400
    assert installed == [result]


def test_when_nothing_installs_the_old_settings_are_installed_again() -> None:
    new, _ = resolve({"context": {"recentFiles": 3}, "completion": {"maxChars": 99}})
    old = Settings()

    def install(candidate: Settings) -> None:
        if candidate != old:
            raise RuntimeError("no")

    assert install_or_fall_back(new, old, install) == (
        old,
        ["settings could not be applied (RuntimeError: no)"],
    )


# --- through the running server ------------------------------------------------------------------


def _messages(server: RawLsp) -> list[str]:
    return [
        note["params"]["message"]
        for note in server.notifications
        if note["method"] == "window/showMessage"
    ]


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_hostile_settings_through_initialize_and_configuration(tmp_path: Path) -> None:
    with RawLsp(cwd=tmp_path) as server:
        options = _with_kind_and_a_good_value(HOSTILE[0][1])
        answer = server.initialize(options)
        assert "result" in answer, answer
        status = server.status(1)["result"]
        assert status["kind"] == "Warning" and "backend.http.url" in status["message"], status
        assert status["backend"] == "http"
        for number, (name, layer) in enumerate(HOSTILE[1:], start=2):
            server.send(
                {
                    "jsonrpc": "2.0",
                    "method": "workspace/didChangeConfiguration",
                    # Trusted: restricted settings from the workspace apply, so they are checked.
                    "params": {"settings": {"ghostcomplete": _trusted(layer)}},
                }
            )
            status = server.status(number)["result"]
            assert status["kind"] == "Warning" and name in status["message"], (name, status)
        assert not [text for text in _messages(server) if "internal error" in text]
        assert server.stop() == 0
        assert "Traceback" not in server.stderr, server.stderr


def _trusted(layer: dict[str, Any]) -> dict[str, Any]:
    """A workspace configuration push from a client that says the workspace is trusted."""
    return {**_with_kind_and_a_good_value(layer), "workspaceTrusted": True}


def _no_side_effects(layer: Any) -> Any:
    """Telemetry off, so that no database is created wherever a random path points."""
    if isinstance(layer, dict):
        layer = {**layer, "telemetry": {"mode": "off"}}
    return layer


@pytest.mark.e2e
@pytest.mark.timeout(300)
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(SETTINGS_JSON, min_size=1, max_size=4))
def test_arbitrary_json_through_the_server_is_never_an_internal_error(
    tmp_path_factory: pytest.TempPathFactory, layers: list[Any]
) -> None:
    with RawLsp(cwd=tmp_path_factory.mktemp("cwd")) as server:
        answer = server.initialize(_no_side_effects(layers[0]))
        assert "result" in answer, answer
        for number, layer in enumerate(layers[1:], start=1):
            server.send(
                {
                    "jsonrpc": "2.0",
                    "method": "workspace/didChangeConfiguration",
                    "params": {"settings": {"ghostcomplete": _no_side_effects(layer)}},
                }
            )
            assert "result" in server.status(number)
        assert not [text for text in _messages(server) if "internal error" in text]
        assert server.stop() == 0
        assert "Traceback" not in server.stderr, server.stderr
