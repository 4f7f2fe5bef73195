"""Settings that decide where text and keys go, and who may set them.

A repository can carry editor settings (VS Code's ``.vscode/settings.json``): were the
server to take ``backend.http.url`` and ``backend.http.apiKeyEnv`` from there, opening a
repository could send the value of any environment variable, as a Bearer token, to any
address. So the settings in ``RESTRICTED_SETTINGS`` are taken

- from initializationOptions: the client's launch options, which come from the user's own
  configuration (Neovim's ``setup{settings=...}``; VS Code sends user-level values for these
  unless the workspace is trusted);
- from workspace configuration (workspace/configuration answers and
  workspace/didChangeConfiguration pushes) only when that tree carries
  ``"workspaceTrusted": true``: the client says its user trusts the workspace. Absent or any
  other value: those keys of that tree are ignored, and the lower layer's values stand.

``workspaceTrusted`` is not a setting: it is read from the top level of each tree and removed
before the settings are parsed.
"""

from __future__ import annotations

from typing import Any

from ghostcomplete.completion.settings import resolve, to_json

TRUST_FIELD = "workspaceTrusted"

# Where requests go and with which credentials (a proxy or a certificate authority can read
# the key as well as the server can), and which files are never read.
RESTRICTED_SETTINGS: tuple[str, ...] = (
    "backend.http.url",
    "backend.http.apiKeyEnv",
    "backend.http.apiKey",
    "backend.http.headers",
    "backend.http.proxy",
    "backend.http.caBundle",
    "backend.http.verifyTls",
    "context.exclude",
)


def client_layers(initialization: Any, workspace: Any = None) -> tuple[tuple[Any, ...], list[str]]:
    """The layers to resolve (initializationOptions, then the workspace configuration if
    any) and the restricted keys ignored because the workspace configuration tried to change
    them without saying that the workspace is trusted."""
    initial, _ = _without_trust_field(initialization)
    if workspace is None:
        return (initial,), []
    rest, trusted = _without_trust_field(workspace)
    if trusted or not isinstance(rest, dict):
        return (initial, rest), []
    below = to_json(resolve(initial)[0])
    ignored: list[str] = []
    for key in RESTRICTED_SETTINGS:
        present, value = _lookup(rest, key)
        if not present:
            continue
        rest = _dropped(rest, key.split("."))
        if _lookup(below, key) != (True, value):
            ignored.append(key)
    return (initial, rest), ignored


def _without_trust_field(layer: Any) -> tuple[Any, bool]:
    if not isinstance(layer, dict) or TRUST_FIELD not in layer:
        return layer, False
    rest = {key: value for key, value in layer.items() if key != TRUST_FIELD}
    return rest, layer[TRUST_FIELD] is True


def _lookup(tree: Any, dotted: str) -> tuple[bool, Any]:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _dropped(tree: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """A copy of ``tree`` without the key at ``parts`` (the client's tree is left alone)."""
    head, *rest = parts
    copy = dict(tree)
    if not rest:
        copy.pop(head, None)
    elif isinstance(copy.get(head), dict):
        copy[head] = _dropped(copy[head], rest)
    return copy
