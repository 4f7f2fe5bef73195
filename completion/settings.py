"""Typed settings, every field defaulted, parsed from camelCase JSON.

Precedence, in one place (``resolve``): defaults < initializationOptions < workspace
configuration (section ``ghostcomplete``). A bad value produces one readable message and the
default (or the lower layer's value) is kept for that field; everything else still applies.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from ghostcomplete.backends.config import BackendSettings
from ghostcomplete.backends.setting_checks import between, one_of
from ghostcomplete.context.exclusion import DEFAULT_EXCLUDE


@dataclass(frozen=True)
class DenseSettings:
    # Dense retrieval: chunks embedded by an ONNX sentence embedder, fused with BM25 by
    # reciprocal rank fusion (context.snippets "ranked" and "bm25" only).
    enabled: bool = False
    # The folder `python -m ghostcomplete.model.embedder` wrote; null: its default folder,
    # $XDG_DATA_HOME (~/.local/share)/ghostcomplete/embedder.
    path: str | None = None
    threads: int = field(default=1, metadata=between(1, 64))
    # Load model.int8.onnx instead of model.onnx when the folder has it.
    quantized: bool = False


@dataclass(frozen=True)
class ContextSettings:
    recent_files: int = field(default=20, metadata=between(0, 200))
    max_file_bytes: int = field(default=1_000_000, metadata=between(1_000, 100_000_000))
    # "ranked": definitions of imported names + BM25 over tree-sitter units (ours);
    # "bm25" / "imports": one of the two; "copilot": Copilot's published baseline; "none".
    snippets: str = field(
        default="ranked", metadata=one_of("ranked", "bm25", "imports", "copilot", "none")
    )
    window_lines: int = field(default=60, metadata=between(5, 400))
    max_snippets: int = field(default=4, metadata=between(0, 20))
    # Files never read into a prompt (gitignore syntax); replaces the default list.
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    respect_gitignore: bool = True
    dense: DenseSettings = DenseSettings()


@dataclass(frozen=True)
class BudgetSettings:
    max_tokens: int = field(default=2048, metadata=between(64, 200_000))
    suffix_share: float = field(default=0.2, metadata=between(0.0, 0.9))
    snippet_share: float = field(default=0.3, metadata=between(0.0, 0.9))


@dataclass(frozen=True)
class CompletionSettings:
    enabled: bool = True
    disabled_languages: tuple[str, ...] = ()
    # No suggestions in files matching these patterns (they may still serve as context).
    disabled_files: tuple[str, ...] = ()
    max_block_lines: int = field(default=20, metadata=between(1, 200))
    max_chars: int = field(default=400, metadata=between(1, 10_000))
    candidates: int = field(default=3, metadata=between(1, 10))
    min_context_chars: int = field(default=10, metadata=between(0, 1000))
    timeout_ms: int = field(default=1000, metadata=between(10, 60_000))
    # "adaptive" learns the typing rhythm and the backend's speed; "fixed" waits debounceMs.
    debounce: str = field(default="adaptive", metadata=one_of("adaptive", "fixed"))
    debounce_ms: int = field(default=75, metadata=between(0, 1000))
    debounce_max_ms: int = field(default=1000, metadata=between(0, 1000))
    # Compute the next suggestion ahead: when one is "shown" (and accepted), on "accept" only.
    prefetch: str = field(default="shown", metadata=one_of("off", "accept", "shown"))


@dataclass(frozen=True)
class EditSettings:
    # Edit requests (ghostcomplete.edit): the longest selection they take, in characters.
    max_selection_chars: int = field(default=20_000, metadata=between(1, 1_000_000))
    # Lines of the file above and below the selection shown to the model.
    context_lines: int = field(default=60, metadata=between(0, 2_000))
    # How long the model may take for the whole answer (milliseconds).
    timeout_ms: int = field(default=60_000, metadata=between(100, 600_000))
    # Upper bound on the answer's tokens.
    max_tokens: int = field(default=4096, metadata=between(16, 32_768))


@dataclass(frozen=True)
class DebugSettings:
    # Send ghostcomplete/didComplete with stage timings after each completion (benchmarks).
    report_timings: bool = False


@dataclass(frozen=True)
class TelemetrySettings:
    # "off" records nothing anywhere; "on" keeps events in a local SQLite file (never sent).
    mode: str = field(default="on", metadata=one_of("on", "off"))
    # The database; null: $GHOSTCOMPLETE_TELEMETRY_PATH, else
    # $XDG_DATA_HOME (~/.local/share)/ghostcomplete/telemetry.sqlite3.
    path: str | None = None
    # Also store suggestion text and snippet file URIs (off: lengths and hashes only).
    capture_content: bool = False


@dataclass(frozen=True)
class Settings:
    backend: BackendSettings = field(default_factory=BackendSettings)
    context: ContextSettings = ContextSettings()
    budget: BudgetSettings = BudgetSettings()
    completion: CompletionSettings = CompletionSettings()
    edit: EditSettings = EditSettings()
    debug: DebugSettings = DebugSettings()
    telemetry: TelemetrySettings = TelemetrySettings()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _convert(value: Any, annotation: Any, path: str) -> Any:
    """``value`` as ``annotation``; raises ValueError with a readable message."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{path} must be true or false, not {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{path} must be a whole number, not {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{path} must be a number, not {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{path} must be a string, not {value!r}")
    if annotation == (str | None):
        if value is None or isinstance(value, str):
            return value
        raise ValueError(f"{path} must be a string or null, not {value!r}")
    if typing.get_origin(annotation) is dict:
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return dict(value)
        raise ValueError(f"{path} must be an object of strings, not {value!r}")
    if typing.get_origin(annotation) is tuple:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ValueError(f"{path} must be a list of strings, not {value!r}")
    raise TypeError(f"no converter for {annotation!r}")  # a bug in this module, not user input


def _apply(base: Any, raw: Any, path: str, errors: list[str]) -> Any:
    """``base`` (a settings dataclass) with the fields present in ``raw`` replaced."""
    if raw is None or raw == []:
        return base  # Lua clients encode an empty table as []
    if not isinstance(raw, dict):
        errors.append(f"{path or 'settings'} must be an object, not {raw!r}")
        return base
    hints = typing.get_type_hints(type(base))
    by_key = {_camel(f.name): f for f in dataclasses.fields(base)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{path}.{key}" if path else str(key)
        spec = by_key.get(key)
        if spec is None:
            errors.append(f"unknown setting {where}")
            continue
        annotation = hints[spec.name]
        if dataclasses.is_dataclass(annotation):
            changes[spec.name] = _apply(getattr(base, spec.name), value, where, errors)
            continue
        try:
            converted = _convert(value, annotation, where)
        except ValueError as error:
            errors.append(str(error))
            continue
        check = spec.metadata.get("check")
        if check is not None and not check[0](converted):
            errors.append(f"{where} must be {check[1]}, not {value!r}")
            continue
        changes[spec.name] = converted
    return dataclasses.replace(base, **changes)


def resolve(*layers: Any) -> tuple[Settings, list[str]]:
    """Settings from defaults and then each layer in order (later layers win), plus one
    readable message per rejected value."""
    settings = Settings()
    errors: list[str] = []
    for layer in layers:
        settings = _apply(settings, layer, "", errors)
    return settings, errors


def to_json(settings: Any) -> dict[str, Any]:
    """The camelCase JSON form of a settings dataclass (what the README documents)."""
    out: dict[str, Any] = {}
    for spec in dataclasses.fields(settings):
        value = getattr(settings, spec.name)
        if dataclasses.is_dataclass(value):
            out[_camel(spec.name)] = to_json(value)
        elif isinstance(value, dict):
            out[_camel(spec.name)] = dict(value)
        elif isinstance(value, tuple):
            out[_camel(spec.name)] = list(value)
        else:
            out[_camel(spec.name)] = value
    return out
