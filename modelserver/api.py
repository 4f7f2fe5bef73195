"""The request and answer shapes ``serve-model`` speaks: OpenAI-compatible ``/v1/completions``
and llama.cpp's ``/infill``, turned into a CompletionPrompt for our backends and back.

Clients may send prefix and suffix apart (``suffix``, ``input_suffix``) or a prompt already
rendered in one of our FIM formats; either way the backend gets the prompt in its own format.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.context.languages import language_of_path
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, comment_prefix
from ghostcomplete.ranker.snippets import Snippet

_CHARS_PER_TOKEN = 4
_DEFAULT_TOKENS = 64
_MAX_TOKENS = 4096
_MAX_CANDIDATES = 8
# "# Path: src/x.py" on the first line, as our http backend and Copilot-style prompts put it.
_PATH_HEADER = re.compile(r"^\s*(?:#|//|--|;)\s*Path:\s*(\S+)")


class BadRequest(Exception):
    """The client's request is wrong; ``status`` is the HTTP status that says how."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Ask:
    """One parsed request: what to generate and how to answer."""

    prompt: CompletionPrompt
    limits: GenerationLimits
    stop: tuple[str, ...]
    stream: bool
    model: str


def split_fim(prompt: str) -> tuple[str, str, str] | None:
    """(family, prefix, suffix) when ``prompt`` is rendered in one of our FIM formats."""
    for family, template in TEMPLATES.items():
        if template.suffix_first or not (template.prefix and template.suffix):
            continue  # suffix-first and plain formats are not told apart from plain text
        start = 0
        if template.file_sep and prompt.startswith((template.repo_name or "\0", template.file_sep)):
            # The family's multi-file format: other files first, then the FIM markers. The
            # files stay in the prefix (an engine that copies from context still sees them).
            start = prompt.find(template.prefix)
            if start < 0:
                continue
        elif not prompt.startswith(template.prefix):
            continue
        if not prompt.endswith(template.middle):
            continue
        head = prompt[:start]
        body = prompt[start + len(template.prefix) : len(prompt) - len(template.middle)]
        prefix, found, suffix = body.partition(template.suffix)
        if found:
            return family, head + prefix, suffix
    return None


def fim_text(prefix: str, suffix: str, family: str | None) -> str:
    """``prefix`` and ``suffix`` in ``family``'s FIM format (no header added: the prefix
    already carries whatever the client put there); just the prefix without a family."""
    if family is None:
        return prefix
    template = TEMPLATES[family]
    if template.suffix_first:
        return f"{template.suffix}{suffix}{template.prefix}{prefix}{template.middle}"
    return f"{template.prefix}{prefix}{template.suffix}{suffix}{template.middle}"


def _language_and_path(prefix: str) -> tuple[str, str]:
    found = _PATH_HEADER.match(prefix)
    if found is None:
        return "plaintext", ""
    return language_of_path(found.group(1)), found.group(1)


def stop_strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise BadRequest(400, "stop must be a string or a list of strings")


def whole_number(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(400, f"{name} must be a whole number")
    return default if value < 0 else max(low, min(value, high))


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        raise BadRequest(400, f"{name} must be a string")
    return value


def _ask(
    prefix: str,
    suffix: str,
    snippets: tuple[Snippet, ...],
    rendered: tuple[str, str] | None,
    family: str | None,
    tokens: int,
    candidates: int,
    stop: tuple[str, ...],
    stream: bool,
    model: str,
    deadline: float,
) -> Ask:
    language_id, path = _language_and_path(prefix)
    context = PackedContext(prefix, suffix, snippets, 0)
    if rendered is not None and rendered[0] == family:
        text = rendered[1]  # already in the backend's format: pass it through untouched
    else:
        text = fim_text(prefix, suffix, family)
    prompt = CompletionPrompt(
        language_id=language_id,
        path=path,
        context=context,
        text=text,
        stop=TEMPLATES[family].stop if family else (),
        reference_texts=tuple(snippet.text for snippet in snippets),
    )
    # A newline stop asks for one line; otherwise the rest of the block.
    line = "\n" in stop
    limits = GenerationLimits(
        scope=Scope.LINE if line else Scope.BLOCK,
        max_chars=tokens * _CHARS_PER_TOKEN,
        max_lines=1 if line else max(1, tokens // 4),
        candidates=candidates,
        deadline=deadline,
    )
    return Ask(prompt, limits, stop, stream, model)


def openai_ask(body: dict[str, Any], family: str | None, deadline: float) -> Ask:
    """An OpenAI ``/v1/completions`` request."""
    prompt = _text(body.get("prompt"), "prompt")
    suffix = body.get("suffix")
    rendered: tuple[str, str] | None = None
    if suffix is None:
        split = split_fim(prompt)
        if split is not None:
            rendered = (split[0], prompt)
            prompt, suffix = split[1], split[2]
    return _ask(
        prompt,
        _text(suffix, "suffix"),
        (),
        rendered,
        family,
        whole_number(body.get("max_tokens"), "max_tokens", _DEFAULT_TOKENS, 1, _MAX_TOKENS),
        whole_number(body.get("n"), "n", 1, 1, _MAX_CANDIDATES),
        stop_strings(body.get("stop")),
        bool(body.get("stream")),
        str(body.get("model") or ""),
        deadline,
    )


def infill_ask(body: dict[str, Any], family: str | None, deadline: float) -> Ask:
    """A llama.cpp ``/infill`` request; ``input_extra`` chunks become snippets."""
    extra = body.get("input_extra") or []
    if not isinstance(extra, list) or not all(isinstance(chunk, dict) for chunk in extra):
        raise BadRequest(400, "input_extra must be a list of {filename, text}")
    snippets = tuple(
        Snippet(_text(chunk.get("filename"), "filename"), 0, _text(chunk.get("text"), "text"), 0.0)
        for chunk in extra
    )
    prefix = _text(body.get("input_prefix"), "input_prefix") + _text(body.get("prompt"), "prompt")
    language_id, _ = _language_and_path(prefix)
    if snippets:  # the model sees them as comments above the prefix
        mark = comment_prefix(language_id)
        shown = "".join(
            f"{mark} Compare this snippet from {s.uri}:\n"
            + "".join(f"{mark} {line}\n" for line in s.text.split("\n"))
            for s in snippets
        )
        prefix_for_model = shown + prefix
    else:
        prefix_for_model = prefix
    ask = _ask(
        prefix,
        _text(body.get("input_suffix"), "input_suffix"),
        snippets,
        None,
        family,
        whole_number(body.get("n_predict"), "n_predict", _DEFAULT_TOKENS, 1, _MAX_TOKENS),
        1,
        stop_strings(body.get("stop")),
        bool(body.get("stream")),
        "",
        deadline,
    )
    if snippets and family is not None:
        suffix = ask.prompt.context.suffix
        text = fim_text(prefix_for_model, suffix, family)
        ask = dataclasses.replace(ask, prompt=dataclasses.replace(ask.prompt, text=text))
    return ask


def parse_body(body: bytes) -> dict[str, Any]:
    """A request body as the JSON object it must be (an empty body is ``{}``)."""
    try:
        value = json.loads(body or b"{}")
    except ValueError as error:
        raise BadRequest(400, f"the body is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return value


def cut_at_stops(text: str, stop: tuple[str, ...]) -> str:
    cuts = [at for at in (text.find(word) for word in stop if word) if at >= 0]
    return text[: min(cuts)] if cuts else text


class StopCutter:
    """``cut_at_stops`` over text that arrives piece by piece: ``feed`` returns what can be
    sent now, holding back a tail that could still turn out to start a stop string, so that
    the pieces sent add up to exactly ``cut_at_stops`` of the whole text."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self.stop = tuple(word for word in stop if word)
        self._hold = max((len(word) - 1 for word in self.stop), default=0)
        self._text = ""
        self._sent = 0
        # True once a stop string arrived: nothing after it is wanted.
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        # A stop string can only begin in the held-back tail or in the new piece.
        search_from = max(0, len(self._text) - self._hold)
        self._text += piece
        cuts = [at for at in (self._text.find(w, search_from) for w in self.stop) if at >= 0]
        end = min(cuts) if cuts else max(self._sent, len(self._text) - self._hold)
        self.stopped = bool(cuts)
        out = self._text[self._sent : end]
        self._sent = end
        return out

    def finish(self) -> str:
        """What is left once the text is complete."""
        if self.stopped:
            return ""
        out = self._text[self._sent :]
        self._sent = len(self._text)
        return out


def openai_answer(texts: list[str], model: str) -> dict[str, Any]:
    choices = [
        {"index": index, "text": text, "finish_reason": "stop", "logprobs": None}
        for index, text in enumerate(texts or [""])
    ]
    return {
        "id": "cmpl-" + uuid.uuid4().hex[:24],
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"completion_tokens": sum(len(t) for t in texts) // _CHARS_PER_TOKEN},
    }


def stream_pieces(text: str) -> list[str]:
    """``text`` cut after each line break, so that clients can stop at the line they want."""
    pieces = re.findall(r"[^\n]*\n|[^\n]+", text)
    return pieces or [""]
