"""Typed settings: defaults < initializationOptions < workspace configuration."""

from __future__ import annotations

from ghostcomplete.completion.settings import (
    LOCAL_TIMEOUT_MS,
    REMOTE_TIMEOUT_MS,
    Settings,
    resolve,
    to_json,
)


def test_defaults() -> None:
    settings, errors = resolve()
    assert settings == Settings() and errors == []
    assert settings.context.recent_files == 20
    assert settings.backend.kind == "auto"


def test_layers_merge_later_wins_per_field() -> None:
    settings, errors = resolve(
        {"context": {"recentFiles": 5, "windowLines": 30}},
        {"context": {"recentFiles": 8}, "completion": {"disabledLanguages": ["markdown"]}},
    )
    assert errors == []
    assert settings.context.recent_files == 8
    assert settings.context.window_lines == 30
    assert settings.completion.disabled_languages == ("markdown",)


def test_bad_values_are_reported_and_skipped() -> None:
    settings, errors = resolve(
        {
            "context": {"recentFiles": "many", "maxSnippets": 4000, "snippets": "magic"},
            "budget": {"suffixShare": True},
            "backend": {"kind": "gpt-9"},
            "surprise": 1,
            "completion": 5,
        }
    )
    assert settings == Settings()
    text = "\n".join(errors)
    for expected in (
        "context.recentFiles must be a whole number",
        "context.maxSnippets must be between 0 and 20",
        "context.snippets must be one of ranked, bm25, imports, copilot, none",
        "budget.suffixShare must be a number",
        "backend.kind must be one of auto, lookup, hybrid",
        "unknown setting surprise",
        "completion must be an object",
    ):
        assert expected in text
    assert len(errors) == 7


def test_the_deadline_is_by_where_the_model_runs_unless_set() -> None:
    def deadline(*layers: dict[str, object]) -> int:
        settings, errors = resolve(*layers)
        assert errors == []
        return settings.deadline_ms

    assert Settings().completion.timeout_ms == 0
    assert deadline() == LOCAL_TIMEOUT_MS == 600  # auto: the lookup or a model here
    for kind in ("lookup", "onnx"):
        assert deadline({"backend": {"kind": kind}}) == LOCAL_TIMEOUT_MS
    assert deadline({"backend": {"kind": "hybrid"}}) == LOCAL_TIMEOUT_MS  # its model: onnx
    assert deadline({"backend": {"kind": "http"}}) == REMOTE_TIMEOUT_MS == 1000
    remote_hybrid = {"backend": {"kind": "hybrid", "hybrid": {"model": "http"}}}
    assert deadline(remote_hybrid) == REMOTE_TIMEOUT_MS
    # A value set wins, on either side, and 0 means the default again.
    assert deadline(remote_hybrid, {"completion": {"timeoutMs": 300}}) == 300
    assert deadline({"completion": {"timeoutMs": 2500}}) == 2500
    assert deadline({"completion": {"timeoutMs": 2500}}, {"completion": {"timeoutMs": 0}}) == 600
    settings, errors = resolve({"completion": {"timeoutMs": 5}})
    assert errors == ["completion.timeoutMs must be 0 or between 10 and 600000, not 5"]
    assert settings.deadline_ms == LOCAL_TIMEOUT_MS
    # A quality benchmark of a slow model may wait minutes; past ten is a mistake.
    assert deadline({"completion": {"timeoutMs": 300_000}}) == 300_000
    settings, errors = resolve({"completion": {"timeoutMs": 600_001}})
    assert errors == ["completion.timeoutMs must be 0 or between 10 and 600000, not 600001"]
    assert settings.deadline_ms == LOCAL_TIMEOUT_MS


def test_non_object_layer() -> None:
    settings, errors = resolve("nonsense")
    assert settings == Settings() and errors == ["settings must be an object, not 'nonsense'"]


def test_json_round_trip() -> None:
    settings, errors = resolve(to_json(Settings()))
    assert errors == [] and settings == Settings()
    assert to_json(Settings())["context"]["recentFiles"] == 20


def test_empty_lua_table_is_an_empty_object() -> None:
    assert resolve([]) == (Settings(), [])


def test_settings_reference_shows_the_real_defaults() -> None:
    import json

    from support import REPO

    reference = (REPO / "docs" / "settings.md").read_text()
    block = reference.split("<!-- settings-defaults:", 1)[1].split("```json\n", 1)[1]
    shown = json.loads(block.split("```", 1)[0])
    assert shown == to_json(Settings())


def test_settings_reference_has_a_row_for_every_setting() -> None:
    from support import REPO

    reference = (REPO / "docs" / "settings.md").read_text()

    def leaves(tree: dict, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        found: list[tuple[str, ...]] = []
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                found += leaves(value, (*path, key))
            else:
                found.append((*path, key))
        return found

    for path in leaves(to_json(Settings())):
        row = f"| `{'.'.join(path[1:])}` |" if len(path) > 1 else f"| `{path[0]}` |"
        assert row in reference, f"docs/settings.md has no row for {'.'.join(path)}"
