"""The shapes of OpenAI's ``/v1/chat/completions`` as ``serve-model`` speaks them: a request
turned into a conversation for the backend's instruct model, and its answer whole or as
``chat.completion.chunk`` events.

Answers are greedy: ``temperature``, ``top_p``, ``seed`` and the like are accepted and ignored,
as ``/v1/completions`` ignores them. Content may be a string or a list of text parts (what
OpenAI's clients send); other parts (images, audio) are refused.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from ghostcomplete.backends.base import ChatLimits, ChatReply
from ghostcomplete.modelserver.api import BadRequest, stop_strings, whole_number

DEFAULT_CHAT_TOKENS = 1024
MAX_CHAT_TOKENS = 8192
MAX_MESSAGES = 1000
# OpenAI's newer name for the system role; chat templates know "system".
_ROLE_NAMES = {"developer": "system"}


@dataclass(frozen=True)
class ChatAsk:
    messages: list[dict[str, str]]
    limits: ChatLimits
    stream: bool
    model: str
    # stream_options.include_usage: one more event with the token counts, before [DONE].
    include_usage: bool = False


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            text = part.get("text") if isinstance(part, dict) else None
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(text, str)
            ):
                raise BadRequest(
                    400, f'{where}: only text parts ({{"type": "text", "text": "..."}}) are read'
                )
            texts.append(text)
        return "\n".join(texts)
    raise BadRequest(400, f"{where} must be a string or a list of text parts")


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadRequest(400, "messages must be a non-empty list of {role, content}")
    if len(value) > MAX_MESSAGES:
        raise BadRequest(400, f"more than {MAX_MESSAGES} messages")
    messages = []
    for index, message in enumerate(value):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequest(400, f"{where} must be an object with role and content")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise BadRequest(400, f"{where}.role must be a string")
        content = _content(message.get("content"), f"{where}.content")
        messages.append({"role": _ROLE_NAMES.get(role, role), "content": content})
    return messages


def chat_ask(body: dict[str, Any], deadline: float) -> ChatAsk:
    """An OpenAI chat completion request."""
    messages = _messages(body.get("messages"))
    tokens = body.get("max_completion_tokens")
    name = "max_completion_tokens"
    if tokens is None:
        tokens, name = body.get("max_tokens"), "max_tokens"
    n = body.get("n")
    if n is not None and n != 1:
        raise BadRequest(400, "n must be 1: answers are greedy, so every choice would be the same")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(400, "stream_options must be an object")
    limits = ChatLimits(
        max_tokens=whole_number(tokens, name, DEFAULT_CHAT_TOKENS, 1, MAX_CHAT_TOKENS),
        deadline=deadline,
        stop=stop_strings(body.get("stop")),
    )
    return ChatAsk(
        messages,
        limits,
        bool(body.get("stream")),
        str(body.get("model") or ""),
        bool((options or {}).get("include_usage")),
    )


def _usage(reply: ChatReply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def chat_answer(reply: ChatReply, model: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": reply.text}
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
        ],
        "usage": _usage(reply),
    }


class ChatChunks:
    """The events of one streamed answer: same id, time and model in each."""

    def __init__(self, model: str) -> None:
        self.base = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def delta(self, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {**self.base, "choices": [choice]}

    def usage(self, reply: ChatReply) -> dict[str, Any]:
        return {**self.base, "choices": [], "usage": _usage(reply)}
