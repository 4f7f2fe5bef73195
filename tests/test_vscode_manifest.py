"""The VS Code extension's manifest against the server: settings, protocol names, commands.

Every setting the extension contributes (``ghostcomplete.<section>.<key>``) must be a server
setting with the same type, default and allowed values, and every server setting must be
contributed, except the extension's own ``server.*`` and ``trace.*`` keys, which the server
never sees. No Node or VS Code needed: this reads package.json and src/*.ts as text.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import typing
from typing import Any

import pytest
from support import REPO

from ghostcomplete.completion.settings import Settings, _camel
from ghostcomplete.completion.workspace_trust import RESTRICTED_SETTINGS, TRUST_FIELD
from ghostcomplete.server import protocol

EXTENSION = REPO / "vscode-extension"
MANIFEST = json.loads((EXTENSION / "package.json").read_text())
CLIENT_ONLY = ("server", "trace")


def contributed() -> dict[str, dict[str, Any]]:
    """Contributed settings without the ``ghostcomplete.`` prefix."""
    out: dict[str, dict[str, Any]] = {}
    for group in MANIFEST["contributes"]["configuration"]:
        for key, schema in group["properties"].items():
            assert key.startswith("ghostcomplete."), key
            assert key.removeprefix("ghostcomplete.") not in out, f"{key} contributed twice"
            out[key.removeprefix("ghostcomplete.")] = schema
    return out


def server_fields() -> dict[str, tuple[Any, Any, str | None]]:
    """Every leaf setting of the server: dotted camelCase key -> (annotation, default, check)."""
    out: dict[str, tuple[Any, Any, str | None]] = {}

    def walk(settings: Any, prefix: str) -> None:
        hints = typing.get_type_hints(type(settings))
        for spec in dataclasses.fields(settings):
            value = getattr(settings, spec.name)
            key = prefix + _camel(spec.name)
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")
                continue
            check = spec.metadata.get("check")
            out[key] = (hints[spec.name], value, check[1] if check else None)

    walk(Settings(), "")
    return out


SERVER = server_fields()
CONTRIBUTED = contributed()
SHARED = sorted(key for key in CONTRIBUTED if key.split(".")[0] not in CLIENT_ONLY)


def test_every_server_setting_is_contributed_and_nothing_else():
    assert sorted(SERVER) == SHARED


def test_client_only_settings_are_the_ones_the_extension_strips():
    settings_ts = (EXTENSION / "src" / "settings.ts").read_text()
    stripped = re.search(r"CLIENT_ONLY_SECTIONS: readonly string\[\] = \[([^\]]*)\]", settings_ts)
    assert stripped is not None
    assert sorted(re.findall(r'"(\w+)"', stripped.group(1))) == sorted(CLIENT_ONLY)
    assert not {key.split(".")[0] for key in SERVER} & set(CLIENT_ONLY)
    client_only = sorted(key for key in CONTRIBUTED if key.split(".")[0] in CLIENT_ONLY)
    assert client_only == ["server.command", "server.verbose", "trace.server"]


def test_restart_settings_exist():
    settings_ts = (EXTENSION / "src" / "settings.ts").read_text()
    block = re.search(r"RESTART_SETTINGS: readonly string\[\] = \[([^\]]*)\]", settings_ts)
    assert block is not None
    keys = re.findall(r'"([\w.]+)"', block.group(1))
    assert keys and set(keys) <= set(CONTRIBUTED)
    assert {"server.command", "backend.kind", "backend.onnx.path"} <= set(keys)


def _json_type(annotation: Any) -> Any:
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if annotation is str:
        return "string"
    if annotation == (str | None):
        return ["string", "null"]
    if typing.get_origin(annotation) is tuple:
        return "array"
    if typing.get_origin(annotation) is dict:
        return "object"
    raise AssertionError(f"no JSON type for {annotation!r}: teach this test")


@pytest.mark.parametrize("key", sorted(SERVER))
def test_same_type_default_and_allowed_values(key: str):
    annotation, default, check = SERVER[key]
    schema = CONTRIBUTED[key]
    assert schema["type"] == _json_type(annotation)
    expected_default = list(default) if isinstance(default, tuple) else default
    assert schema["default"] == expected_default
    assert type(schema["default"]) is type(expected_default)  # 0.2 vs 0, true vs 1
    if schema["type"] == "array":
        assert schema["items"] == {"type": "string"}
    assert schema.get("markdownDescription") or schema.get("description"), f"{key}: no description"
    choices = re.fullmatch(r"(null or )?one of (.*)", check or "")
    if choices:
        assert schema["enum"] == ([None] if choices.group(1) else []) + choices.group(2).split(", ")
    else:
        assert "enum" not in schema
    # "0 or between 10 and 600000": 0 has a meaning of its own; JSON Schema's bounds span both.
    bounds = re.fullmatch(r"(0 or )?between (\S+) and (\S+)", check or "")
    if bounds:
        zero, low, high = bounds.groups()
        assert (schema["minimum"], schema["maximum"]) == (0 if zero else float(low), float(high))
    else:
        assert "minimum" not in schema and "maximum" not in schema


def test_defaults_resolve_on_the_server_without_complaint():
    """The tree of contributed defaults (what VS Code hands the extension when the user set
    nothing) is accepted by the server's own parser as it is."""
    from ghostcomplete.completion.settings import resolve, to_json

    tree: dict[str, Any] = {}
    for key in SHARED:
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = CONTRIBUTED[key]["default"]
    settings, errors = resolve(tree)
    assert errors == []
    assert to_json(settings) == to_json(Settings())


def test_protocol_names_mirror_server_protocol():
    protocol_ts = (EXTENSION / "src" / "protocol.ts").read_text()
    mirrored = dict(re.findall(r'export const (\w+) = "([^"]+)";', protocol_ts))
    server = {
        name: value
        for name, value in vars(protocol).items()
        if name.isupper() and isinstance(value, str) and name != "__doc__"
    }
    assert mirrored == server
    kinds = re.search(r"export type StatusKind = ([^;]+);", protocol_ts)
    assert kinds is not None
    assert re.findall(r'"(\w+)"', kinds.group(1)) == [kind.value for kind in protocol.StatusKind]


def test_contributed_commands():
    commands = {command["command"]: command for command in MANIFEST["contributes"]["commands"]}
    titles = {command["title"] for command in commands.values()}
    wanted = {"Edit Selection…", "Toggle Completions", "Show Acceptance Stats", "Restart Server"}
    assert wanted <= titles
    # vscode-languageclient registers the server's commands itself: the ids must not collide.
    server_commands = {v for k, v in vars(protocol).items() if k.startswith("COMMAND_")}
    assert not set(commands) & server_commands
    menu_ts = (EXTENSION / "src" / "menu.ts").read_text()
    registered = set(re.findall(r'^\s+\w+: "(ghostcomplete\.\w+)",$', menu_ts, re.MULTILINE))
    assert registered == set(commands)
    for command in commands.values():
        assert command["category"] == "ghostcomplete"


def test_manifest_basics():
    assert MANIFEST["main"] == "./out/extension.js"
    assert MANIFEST["activationEvents"] == ["onStartupFinished"]
    assert MANIFEST["engines"]["vscode"] == "^1.91.0"
    # vsce refuses @types/vscode newer than engines.vscode; languageclient 11 needs ^1.91.
    assert MANIFEST["devDependencies"]["@types/vscode"] == "~1.91.0"
    assert MANIFEST["dependencies"]["vscode-languageclient"].startswith("11.")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert MANIFEST["version"] == pyproject["project"]["version"]
    restricted = MANIFEST["capabilities"]["untrustedWorkspaces"]["restrictedConfigurations"]
    assert restricted == ["ghostcomplete.server.command"] + [
        f"ghostcomplete.{key}" for key in RESTRICTED_SETTINGS
    ]
    lock = json.loads((EXTENSION / "package-lock.json").read_text())
    assert lock["packages"][""]["version"] == MANIFEST["version"]


def test_restricted_settings_mirror_the_server():
    """The keys a workspace cannot set unless trusted, and the field that says it is trusted,
    are the server's (completion/workspace_trust.py)."""
    settings_ts = (EXTENSION / "src" / "settings.ts").read_text()
    block = re.search(r"RESTRICTED_SETTINGS: readonly string\[\] = \[([^\]]*)\]", settings_ts)
    assert block is not None
    assert tuple(re.findall(r'"([\w.]+)"', block.group(1))) == RESTRICTED_SETTINGS
    assert set(RESTRICTED_SETTINGS) <= set(SERVER)
    assert f'export const TRUST_FIELD = "{TRUST_FIELD}";' in settings_ts
