"""Typed settings: defaults < initializationOptions < workspace configuration."""

from __future__ import annotations

from ghostcomplete.completion.settings import Settings, resolve, to_json


def test_defaults() -> None:
    settings, errors = resolve()
    assert settings == Settings() and errors == []
    assert settings.context.recent_files == 20
    assert settings.backend.kind == "lookup"


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
        "backend.kind must be one of lookup",
        "unknown setting surprise",
        "completion must be an object",
    ):
        assert expected in text
    assert len(errors) == 7


def test_non_object_layer() -> None:
    settings, errors = resolve("nonsense")
    assert settings == Settings() and errors == ["settings must be an object, not 'nonsense'"]


def test_json_round_trip() -> None:
    settings, errors = resolve(to_json(Settings()))
    assert errors == [] and settings == Settings()
    assert to_json(Settings())["context"]["recentFiles"] == 20


def test_empty_lua_table_is_an_empty_object() -> None:
    assert resolve([]) == (Settings(), [])


def test_readme_shows_the_real_defaults() -> None:
    import json

    from support import REPO

    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- settings-defaults:", 1)[1].split("```json\n", 1)[1]
    shown = json.loads(block.split("```", 1)[0])
    actual = to_json(Settings())
    actual["backend"] = {"kind": actual["backend"]["kind"]}  # http/onnx: their own sections
    assert shown == actual
