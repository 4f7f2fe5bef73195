"""Typed settings, every field defaulted, parsed from camelCase JSON.

Precedence, in one place (``resolve``): defaults < initializationOptions < workspace
configuration (section ``ghostcomplete``). A bad value produces one readable message and the
default (or the lower layer's value) is kept for that field; everything else still applies.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ghostcomplete.backends.config import BackendSettings
from ghostcomplete.backends.setting_checks import (
    between,
    check,
    is_path,
    one_of,
    zero_or_between,
)
from ghostcomplete.context.exclusion import DEFAULT_EXCLUDE, valid_patterns

log = logging.getLogger("ghostcomplete")

_PATTERNS = check(valid_patterns, "a list of gitignore patterns")
_PATH = check(is_path, "null or a file path")
# The longest piece of a rejected value quoted back in a message.
_SHOWN_CHARS = 80
# completion.timeoutMs 0 (the default) is decided by where the model runs. On this machine
# the deadline also ends a one-line answer's decoding, and on a small CPU the shorter answer
# shown sooner is accepted more often than the whole line a longer deadline waits for
# (bench/RESULTS.md, "The default deadline"). Over http the network's round trip is in the
# deadline, and the server's speed is not measured.
LOCAL_TIMEOUT_MS = 600
REMOTE_TIMEOUT_MS = 1000


@dataclass(frozen=True)
class DenseSettings:
    # Dense retrieval: chunks embedded by an ONNX sentence embedder, fused with BM25 by
    # reciprocal rank fusion (context.snippets "ranked" and "bm25" only).
    enabled: bool = False
    # The folder `python -m ghostcomplete.model.embedder` wrote; null: its default folder,
    # $XDG_DATA_HOME (~/.local/share)/ghostcomplete/embedder.
    path: str | None = field(default=None, metadata=_PATH)
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
    # "ranked" also offers the recent files' most similar window of this many lines (the
    # Jaccard window of "copilot", over as many lines before the cursor); 0: none.
    similar_window_lines: int = field(default=0, metadata=between(0, 400))
    max_snippets: int = field(default=4, metadata=between(0, 20))
    # Files never read into a prompt (gitignore syntax); replaces the default list.
    exclude: tuple[str, ...] = field(default=DEFAULT_EXCLUDE, metadata=_PATTERNS)
    respect_gitignore: bool = True
    dense: DenseSettings = DenseSettings()


@dataclass(frozen=True)
class BudgetSettings:
    # The prompt's tokens; 0: by where the model runs (``Pipeline.prompt_tokens``).
    max_tokens: int = field(default=0, metadata=zero_or_between(64, 200_000))
    suffix_share: float = field(default=0.2, metadata=between(0.0, 0.9))
    snippet_share: float = field(default=0.3, metadata=between(0.0, 0.9))


@dataclass(frozen=True)
class CompletionSettings:
    enabled: bool = True
    disabled_languages: tuple[str, ...] = ()
    # No suggestions in files matching these patterns (they may still serve as context).
    disabled_files: tuple[str, ...] = field(default=(), metadata=_PATTERNS)
    max_block_lines: int = field(default=20, metadata=between(1, 200))
    max_chars: int = field(default=400, metadata=between(1, 10_000))
    candidates: int = field(default=3, metadata=between(1, 10))
    min_context_chars: int = field(default=10, metadata=between(0, 1000))
    # The deadline per request (``Settings.deadline_ms``); 0: by where the model runs. Up to
    # ten minutes: no one waits that long while typing, but a quality benchmark of a large
    # model on a small CPU has to let every answer finish.
    timeout_ms: int = field(default=0, metadata=zero_or_between(10, 600_000))
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
    path: str | None = field(default=None, metadata=_PATH)
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

    @property
    def deadline_ms(self) -> int:
        """The deadline per completion request: ``completion.timeoutMs``, or with 0 (its
        default) ``REMOTE_TIMEOUT_MS`` for a model answering over http and
        ``LOCAL_TIMEOUT_MS`` for one on this machine (``auto`` included) or the lookup."""
        if self.completion.timeout_ms:
            return self.completion.timeout_ms
        backend = self.backend
        remote = backend.kind == "http" or (
            backend.kind == "hybrid" and backend.hybrid.model == "http"
        )
        return REMOTE_TIMEOUT_MS if remote else LOCAL_TIMEOUT_MS


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _shown(value: Any) -> str:
    """``value`` as a message quotes it: its repr (ASCII only), cut short."""
    text = ascii(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _convert(value: Any, annotation: Any, path: str) -> Any:
    """``value`` as ``annotation``; raises ValueError with a readable message."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{path} must be true or false, not {_shown(value)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{path} must be a whole number, not {_shown(value)}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{path} must be a number, not {_shown(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{path} must be a string, not {_shown(value)}")
    if annotation == (str | None):
        if value is None or isinstance(value, str):
            return value
        raise ValueError(f"{path} must be a string or null, not {_shown(value)}")
    if typing.get_origin(annotation) is dict:
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return dict(value)
        raise ValueError(f"{path} must be an object of strings, not {_shown(value)}")
    if typing.get_origin(annotation) is tuple:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ValueError(f"{path} must be a list of strings, not {_shown(value)}")
    raise TypeError(f"no converter for {annotation!r}")  # a bug in this module, not user input


def _apply(base: Any, raw: Any, path: str, errors: list[str]) -> Any:
    """``base`` (a settings dataclass) with the fields present in ``raw`` replaced."""
    if raw is None or raw == []:
        return base  # Lua clients encode an empty table as []
    if not isinstance(raw, dict):
        errors.append(f"{path or 'settings'} must be an object, not {_shown(raw)}")
        return base
    hints = typing.get_type_hints(type(base))
    by_key = {_camel(f.name): f for f in dataclasses.fields(base)}
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        name = key if isinstance(key, str) and key.isprintable() and key.isascii() else ascii(key)
        where = f"{path}.{name}" if path else name
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
        rule = spec.metadata.get("check")
        if rule is not None and not _passes(rule[0], converted):
            errors.append(f"{where} must be {rule[1]}, not {_shown(value)}")
            continue
        changes[spec.name] = converted
    return dataclasses.replace(base, **changes)


def _passes(predicate: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(predicate(value))
    except (ValueError, TypeError, UnicodeError):  # e.g. urllib on a port out of range
        return False


def settings_layer(text: str) -> dict[str, Any]:
    """A settings layer given on a command line (``--settings``): camelCase JSON as in
    initializationOptions, inline, or read from ``@FILE``, ``FILE`` or a file named ``*.json``;
    ValueError with a readable message when it is none of these."""
    source = text
    names_a_file = not text.lstrip().startswith("{") and (
        text.endswith(".json") or os.path.isfile(text)
    )
    if text.startswith("@") or names_a_file:
        path = text[1:] if text.startswith("@") else text
        try:
            with open(path, encoding="utf-8") as file:
                source = file.read()
        except OSError as error:
            raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        value = json.loads(source)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


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


def _changed_fields(new: Any, old: Any, path: str = "") -> list[tuple[str, tuple[str, ...]]]:
    """The leaf fields where ``new`` differs from ``old``: (camelCase dotted name, field path)."""
    changed: list[tuple[str, tuple[str, ...]]] = []
    for spec in dataclasses.fields(new):
        mine, theirs = getattr(new, spec.name), getattr(old, spec.name)
        where = f"{path}.{_camel(spec.name)}" if path else _camel(spec.name)
        if mine == theirs:
            continue
        if dataclasses.is_dataclass(mine):
            changed.extend(
                (name, (spec.name, *rest)) for name, rest in _changed_fields(mine, theirs, where)
            )
        else:
            changed.append((where, (spec.name,)))
    return changed


_Section = TypeVar("_Section")


def _with_field(settings: _Section, names: tuple[str, ...], value: Any) -> _Section:
    head, *rest = names
    if rest:
        value = _with_field(getattr(settings, head), tuple(rest), value)
    return dataclasses.replace(settings, **{head: value})  # type: ignore[type-var]


def _value_at(settings: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        settings = getattr(settings, name)
    return settings


def install_or_fall_back(
    new: Settings, old: Settings, install: Callable[[Settings], None]
) -> tuple[Settings, list[str]]:
    """Install ``new``; when that raises, the settings that could be installed and one
    message naming the field that could not.

    Validation should reject every value that cannot be applied; this is the net under it.
    Each field that differs from ``old`` (the settings in force, which installed before) is put
    back alone until one install succeeds; if none does, ``old`` is installed again.
    """
    try:
        install(new)
        return new, []
    except Exception as error:
        log.warning("settings could not be applied", exc_info=True)
        failure = error
    for name, names in _changed_fields(new, old):
        candidate = _with_field(new, names, _value_at(old, names))
        try:
            install(candidate)
        except Exception:
            continue
        return candidate, [f"{name} could not be applied ({type(failure).__name__}: {failure})"]
    install(old)
    return old, [f"settings could not be applied ({type(failure).__name__}: {failure})"]
