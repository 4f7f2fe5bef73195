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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ghostcomplete.backends.base import BackendError, ChatLimits, ChatReply, UnfitRequest
from ghostcomplete.backends.onnx.decode import Limits, decode, prefill_chunks
from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.backends.onnx.installed import read_json
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import Tokenizer
from ghostcomplete.context.syntax import Scope

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
    raise UnfitRequest(f"the model's chat template refused the conversation: {message}")


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


class TooManyTokens(UnfitRequest):
    """The conversation is longer than the model reads."""


# decode()'s reasons as a chat answer's finish_reason.
_FINISH = {"eos": "stop", "stop": "stop", "max_tokens": "length", "context": "length"}


@dataclass(frozen=True)
class ChatModel:
    """What answering a conversation takes (all of it used from the model's thread only)."""

    model: OnnxModel
    tokenizer: Tokenizer
    template: ChatTemplate
    eos: set[int]
    draft_tokens: int
    prefill_chunk: int

    def answer(
        self,
        messages: list[dict[str, str]],
        limits: ChatLimits,
        cancel: threading.Event,
        between: Callable[[], None] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> ChatReply:
        """Greedy decoding from the rendered conversation, in its own KV cache (the
        completions' cache is left alone). ``between`` runs before each forward pass, prompt
        chunks included; ``progress`` gets the settled text so far, as decode() gives it."""
        model = self.model
        tokens = self.tokenizer.encode(self.template.render(messages))
        if len(tokens) + 16 > model.max_positions:
            raise TooManyTokens(
                f"the conversation has {len(tokens)} tokens and the model reads at most "
                f"{model.max_positions}"
            )
        deadline = limits.deadline

        def stop() -> str | None:
            if between is not None:
                between()
            if cancel.is_set():
                return "cancelled"
            if deadline is not None and time.monotonic() > deadline:
                return "deadline"
            return None

        done = prefill_chunks(model, tokens, None, self.prefill_chunk, stop)
        if done.start is None:
            return ChatReply("", done.reason, len(tokens), 0)
        free = StopRule(Scope.BLOCK, "", 1 << 30, 1 << 40, limits.stop)
        stop_at = Limits(
            free, self.eos, limits.max_tokens, deadline, cancel, model.max_positions, between
        )
        found = decode(
            model, self.tokenizer, done.start, stop_at, None, self.draft_tokens, progress
        )
        reason = _FINISH.get(found.reason, found.reason)
        return ChatReply(found.text, reason, len(tokens), len(found.tokens))
