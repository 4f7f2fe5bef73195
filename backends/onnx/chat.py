"""The chat template of a local instruct model, rendered the way Hugging Face renders it.

An instruct model in the optimum layout carries its conversation format as a Jinja template:
``chat_template`` in tokenizer_config.json (a string, or a list of named templates of which
"default" is the one), or a ``chat_template.jinja`` file beside it (newer exports). The template
is rendered in a sandbox with the options transformers uses (``trim_blocks``,
``lstrip_blocks``, loop controls, ``raise_exception``, a ``tojson`` that keeps non-ASCII text)
and the tokenizer's special tokens as variables, then encoded with the special tokens allowed.
A folder without a template holds a completion model: it cannot take edit requests.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.engine import read_json

log = logging.getLogger("ghostcomplete.onnx")

# The tokenizer_config.json entries a template may name.
_SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")


def _token_text(value: object) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _template_source(folder: Path, config: dict[str, Any]) -> str | None:
    found = config.get("chat_template")
    if isinstance(found, list):  # [{"name": "default", "template": ...}, {"name": "tool_use"...}]
        named = {
            str(item.get("name")): item.get("template") for item in found if isinstance(item, dict)
        }
        found = named.get("default")
    if isinstance(found, str) and found.strip():
        return found
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        try:
            return jinja_file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BackendError(f"cannot read {jinja_file}: {error}") from error
    return None


def _raise_exception(message: str) -> None:
    raise BackendError(f"the model's chat template refused the conversation: {message}")


def _tojson(value: object, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


@dataclass(frozen=True)
class ChatTemplate:
    source: str
    special: dict[str, str]

    def render(self, messages: list[dict[str, str]]) -> str:
        """The conversation as the model was trained to read it, ending where it answers."""
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        environment.filters["tojson"] = _tojson
        environment.globals["raise_exception"] = _raise_exception
        environment.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            template = environment.from_string(self.source)
            return template.render(
                messages=messages, add_generation_prompt=True, tools=None, **self.special
            )
        except BackendError:
            raise
        except jinja2.TemplateError as error:
            raise BackendError(f"the model's chat template does not render: {error}") from error


def load_chat_template(folder: Path) -> ChatTemplate | None:
    """The folder's chat template, or None when the model has none (a completion model).

    An unreadable tokenizer_config.json or template file is logged and read as no template:
    completions do not need either, so they go on, and edit requests say what is missing."""
    try:
        config = read_json(folder / "tokenizer_config.json", required=False)
        source = _template_source(folder, config)
    except BackendError as error:
        log.warning("onnx: no chat template, so no edit requests: %s", error)
        return None
    if source is None:
        return None
    special = {
        name: text for name in _SPECIAL_NAMES if (text := _token_text(config.get(name))) is not None
    }
    return ChatTemplate(source, special)
