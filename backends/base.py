"""The one protocol every backend implements, and the plain data it speaks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ghostcomplete.context.display_paths import display_path
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext


@dataclass(frozen=True)
class CompletionPrompt:
    """Everything a backend may use to fill the hole at the cursor."""

    language_id: str
    path: str
    context: PackedContext
    # The model family's fill-in-the-middle prompt, rendered from ``context``.
    text: str
    stop: tuple[str, ...] = ()
    # Texts of the recently used files of the same language (for engines that copy from them).
    reference_texts: tuple[str, ...] = ()
    # The whole document before and after the cursor (the packed context holds only what
    # fits the token budget), for engines that copy from it; empty when prompts leave the
    # machine.
    before_cursor: str = ""
    after_cursor: str = ""
    # How the prompt names the snippets' files (by URI; workspace-relative where possible) and
    # the workspace, for backends that render the context themselves.
    paths: Mapping[str, str] = field(default_factory=dict)
    repo: str = ""

    def path_of(self, uri: str) -> str:
        named = self.paths.get(uri)
        return named if named is not None else display_path(uri)


@dataclass(frozen=True)
class GenerationLimits:
    scope: Scope = Scope.LINE
    max_chars: int = 400
    max_lines: int = 1
    candidates: int = 1
    # time.monotonic() value after which the backend returns what it has.
    deadline: float | None = None


@dataclass(frozen=True)
class TokenTrace:
    """A model's answer before any cut: its text and, per generated token, where the token
    ends in that text and its probability (for benchmarks fitting a confidence cut)."""

    text: str
    ends: tuple[int, ...]
    chances: tuple[float, ...]


@dataclass(frozen=True)
class Candidate:
    text: str
    # Where it came from, for logs and telemetry ("lookup:prefix", "onnx", ...).
    origin: str = ""
    details: dict[str, float] = field(default_factory=dict, compare=False)
    # A model's whole answer token by token, where the backend records it.
    trace: TokenTrace | None = field(default=None, compare=False)


# Told a backend's early answer (the hybrid's lookup suggestion, while its model writes on):
# ``generate_in_turn(prompt, limits, early)``, where a backend has it and ``answers_early``.
EarlyAnswer = Callable[[list[Candidate]], None]


class BackendError(Exception):
    """A backend could not answer; the message is shown to the user (throttled)."""


class UnfitRequest(BackendError):
    """The request itself cannot be served by this model (a prompt longer than the model
    reads, a conversation its chat template refuses): asking again will not help."""


@dataclass(frozen=True)
class ChatLimits:
    max_tokens: int = 1024
    # time.monotonic() value after which the answer is abandoned.
    deadline: float | None = None
    # The answer ends before the first of these (which is left out).
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatReply:
    """An instruct model's answer to a conversation, whole or not."""

    text: str
    # "stop": the model ended it (or a stop string came); "length": max_tokens or the model's
    # window cut it off; "deadline": the deadline did; "cancelled": the caller gave up.
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Backend(Protocol):
    name: str
    # The fill-in-the-middle format of the model behind it ("starcoder", "qwen", ...), or None
    # when the backend reads the packed context itself (lookup) or formats its own prompt.
    fim_family: str | None
    # True when prompts leave the machine: the pipeline then redacts secrets and sends no
    # whole files (reference_texts stays empty).
    remote: bool

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        """Candidates for the hole, best first; an empty list when there is nothing good."""
        ...

    async def aclose(self) -> None:
        """Release connections, sessions and threads."""
        ...


class ChatBackend(Backend, Protocol):
    """A backend with an instruct model (optional): it answers conversations as well."""

    # False when its model cannot follow instructions (a completion-only model).
    follows_instructions: bool

    async def reply(
        self,
        messages: list[dict[str, str]],
        limits: ChatLimits,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        """The model's answer to ``messages`` (role, content); ``on_text`` is called on the
        event loop with each piece of the answer that no stop rule can take back, in order
        (they add up to the text of the reply). Cancelling the call stops the generation."""
        ...


class StreamingBackend(Backend, Protocol):
    """A backend that can also hand out its best candidate while generating it (optional:
    ``generate`` stays the one method everyone calls)."""

    def stream(self, prompt: CompletionPrompt, limits: GenerationLimits) -> AsyncIterator[str]:
        """The first candidate's text in pieces as they are generated, only pieces that will
        not be taken back; they add up to what ``generate`` would give first. Closing the
        iterator early stops the generation."""
        ...
