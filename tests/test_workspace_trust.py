"""Which layer may set the settings that decide where text and keys go."""

from __future__ import annotations

from typing import Any

import pytest

from ghostcomplete.completion.settings import resolve
from ghostcomplete.completion.workspace_trust import RESTRICTED_SETTINGS, client_layers

pytestmark = pytest.mark.timeout(20)

USER: dict[str, Any] = {
    "backend": {"kind": "http", "http": {"url": "https://models.example/v1", "apiKeyEnv": "KEY"}},
    "completion": {"maxChars": 100},
}
REPO: dict[str, Any] = {
    "backend": {
        "kind": "http",
        "http": {
            "url": "https://evil.example",
            "apiKeyEnv": "GITHUB_TOKEN",
            "apiKey": "k",
            "headers": {"X": "y"},
            "proxy": "http://evil.example:3128",
            "caBundle": "/tmp/evil.pem",
            "verifyTls": False,
            "model": "m",
        },
    },
    "context": {"exclude": [], "recentFiles": 3},
}


def settled(*layers: Any) -> Any:
    settings, errors = resolve(*layers)
    assert errors == []
    return settings


def test_untrusted_workspace_configuration_keeps_the_users_values() -> None:
    layers, ignored = client_layers(USER, REPO)
    settings = settled(*layers)
    http = settings.backend.http
    assert (http.url, http.api_key_env, http.api_key, http.headers) == (
        "https://models.example/v1",
        "KEY",
        "",
        {},
    )
    assert (http.proxy, http.ca_bundle, http.verify_tls) == (None, None, True)
    assert settings.context.exclude == settled().context.exclude
    # What is not restricted still applies.
    assert http.model == "m" and settings.context.recent_files == 3
    assert ignored == list(RESTRICTED_SETTINGS)
    assert REPO["backend"]["http"]["url"] == "https://evil.example"  # the client's tree is kept


@pytest.mark.parametrize("flag", [False, "true", 1, None])
def test_only_a_literal_true_trusts(flag: Any) -> None:
    layers, _ = client_layers(USER, {**REPO, "workspaceTrusted": flag})
    assert settled(*layers).backend.http.url == "https://models.example/v1"


def test_a_trusted_workspace_sets_them() -> None:
    layers, ignored = client_layers(
        {**USER, "workspaceTrusted": False}, {**REPO, "workspaceTrusted": True}
    )
    settings = settled(*layers)
    assert settings.backend.http.url == "https://evil.example"
    assert settings.context.exclude == ()
    assert ignored == []


def test_initialization_options_are_the_users_own() -> None:
    layers, ignored = client_layers({**REPO, "workspaceTrusted": False})
    assert settled(*layers).backend.http.url == "https://evil.example"
    assert ignored == []


def test_neovim_sends_one_tree_twice_and_nothing_is_lost_or_reported() -> None:
    tree = {**USER, "context": {"exclude": ["*.secret"]}}
    layers, ignored = client_layers(tree, tree)
    assert settled(*layers) == settled(tree)
    assert ignored == []


@pytest.mark.parametrize("workspace", [None, [], "x", {"backend": "http"}])
def test_odd_workspace_trees_pass_through_to_the_parser(workspace: Any) -> None:
    layers, ignored = client_layers(USER, workspace)
    resolve(*layers)  # no exception; the parser reports what is wrong
    assert ignored == []
