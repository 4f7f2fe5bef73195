"""The lookup first, a model where the lookup is not sure, and never past the deadline; or,
for a model large enough to be right more often than the lookup's sure copies, the model
first and the lookup where the model has nothing in time (``backend.hybrid.order``).

The lookup answers in milliseconds with a calibrated chance that its suggestion is accepted
whole (``details["confidence"]``, lookup/confidence.acceptance_chance). Where that chance is
at least ``backend.hybrid.lookupFirst`` its answer goes out and the model is not asked: a
copy that sure is accepted more often than a small model's guess, and costs no model time.
Otherwise the model is asked, under the request's deadline less a margin for the filters
that follow. When the model fails, errs, ends past that deadline or gives nothing, the
lookup's answer goes out (if it had one); only when the lookup had nothing either does the
model's error reach the session (which tells the user, at most once an hour). Each
candidate's ``origin`` says who wrote it ("lookup:prefix", "lookup:ngram", "onnx", "http").

A cancelled request (superseded by a newer keystroke) cancels the model call with it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ghostcomplete.backends.base import (
    Backend,
    BackendError,
    Candidate,
    ChatLimits,
    ChatReply,
    CompletionPrompt,
    EarlyAnswer,
    GenerationLimits,
    UnfitRequest,
)
from ghostcomplete.backends.hybrid.config import HybridSettings
from ghostcomplete.backends.lookup.backend import LookupBackend

log = logging.getLogger("ghostcomplete")

# ``order: "auto"`` puts a local model of at least this many weights first: of the two
# sizes measured on the development projects, the 0.5B (0.63 billion with its untied output
# layer) keeps more characters behind the lookup's sure copies, the 1.5B (1.78 billion) ahead
# of them (bench/RESULTS.md, *The hybrid's order*).
MODEL_FIRST_PARAMETERS = 1_000_000_000
# Of the time left when the model is asked, the share kept back for what follows it (the
# filters, the answer's way back): the model's deadline is this much before the request's.
_MARGIN_SHARE = 0.05
_MIN_MARGIN_S = 0.02


def acceptance_chance(candidates: list[Candidate]) -> float | None:
    """The lookup's calibrated chance that its first suggestion is accepted whole; None where
    it has none (nothing to show, the n-gram fallback's guess, or a language family with no
    fitted calibration)."""
    if not candidates:
        return None
    return candidates[0].details.get("confidence")


def lookup_is_likelier(
    quick: list[Candidate], answer: list[Candidate], weigh: str = "chance"
) -> bool:
    """Whether the lookup's suggestion goes before the model's: both carry a calibrated
    chance (``details["confidence"]``: the lookup's of being accepted whole, the model's
    confidence cut's of being typed whole) and the lookup's is higher; with ``weigh``
    "chars", its chance times its length (the characters it is expected to save) is."""
    ours = acceptance_chance(quick)
    theirs = acceptance_chance(answer)
    if ours is None or theirs is None:
        return False
    if weigh == "chars":
        return ours * len(quick[0].text.strip()) > theirs * len(answer[0].text.strip())
    return ours > theirs


def lookup_is_sure(quick: list[Candidate], lookup_first: float) -> bool:
    """Whether the lookup's answer goes out without asking the model: it has a suggestion
    whose calibrated chance is at least ``lookup_first``."""
    chance = acceptance_chance(quick)
    return bool(quick) and chance is not None and chance >= lookup_first


def combined(
    quick: list[Candidate],
    answer: list[Candidate],
    candidates: int,
    weigh: str = "chance",
    model_first: bool = False,
) -> tuple[str, list[Candidate]]:
    """The model's ``answer`` and the lookup's ``quick`` in the order they are shown, and
    which of the hybrid's counters that answer adds to ("fallback": the model gave nothing;
    "lookup_likelier"; "model"). At least ``candidates`` of them, when there are that many.
    With ``model_first`` the model's answer goes first whatever the two chances."""
    if not answer:
        return "fallback", quick
    if not model_first and lookup_is_likelier(quick, answer, weigh):
        extra = [c for c in answer if all(c.text != q.text for q in quick)]
        return "lookup_likelier", (quick + extra)[: max(candidates, len(quick))]
    # The lookup's suggestions stay as alternatives after the model's.
    extra = [c for c in quick if all(c.text != a.text for a in answer)]
    return "model", (answer + extra)[: max(candidates, len(answer))]


def model_goes_first(order: str, model: object) -> bool:
    """Whether the hybrid's ``order`` puts ``model`` first: "model" always, "chance" never,
    "auto" for a model that says it has at least MODEL_FIRST_PARAMETERS weights (a local
    one; a remote model's size is not known)."""
    if order == "auto":
        weights = getattr(model, "parameters", None)
        return isinstance(weights, int) and weights >= MODEL_FIRST_PARAMETERS
    return order == "model"


def model_deadline(deadline: float | None, now: float) -> float | None:
    """When the model must have answered, for a request due at ``deadline``."""
    if deadline is None:
        return None
    left = deadline - now
    return deadline - max(_MIN_MARGIN_S, _MARGIN_SHARE * left)


class HybridBackend:
    """The lookup where it is sure, the model elsewhere, the lookup again when the model
    cannot answer in time."""

    name = "hybrid"

    def __init__(
        self,
        lookup: LookupBackend,
        model: Backend | None,
        settings: HybridSettings,
        model_problem: str | None = None,
    ) -> None:
        """``model`` None: the model could not be built (``model_problem`` says why); the
        lookup answers alone until the backend is built again."""
        self.lookup = lookup
        self.model = model
        self.settings = settings
        self.model_problem = model_problem
        # The model formats the prompt; the lookup reads the packed context whatever its format.
        self.fim_family: str | None = model.fim_family if model is not None else None
        # Prompts leave the machine when the model is remote: the pipeline then redacts them
        # and sends no whole files, and the lookup copies from what the prompt holds.
        self.remote: bool = bool(getattr(model, "remote", False))
        self.model_first = model is not None and model_goes_first(settings.order, model)
        self.counters = {"lookup_first": 0, "model": 0, "fallback": 0, "lookup_likelier": 0}

    @property
    def description(self) -> str:
        """What answers, for status reports and logs."""
        if self.model is None:
            return f"hybrid: lookup only ({self.model_problem})"
        if self.model_first:
            return f"hybrid: {_model_label(self.model)} first, lookup where it has nothing"
        return f"hybrid: lookup + {_model_label(self.model)}"

    @property
    def prompt_tokens(self) -> int | None:
        """The prompt budget its model asks for on this machine (None: the pipeline's)."""
        budget = getattr(self.model, "prompt_tokens", None)
        return budget if isinstance(budget, int) else None

    @property
    def follows_instructions(self) -> bool:
        """Edit requests go to the model, when it can follow instructions."""
        model = self.model
        return callable(getattr(model, "chat", None)) and bool(
            getattr(model, "follows_instructions", True)
        )

    async def chat(
        self, messages: list[dict[str, str]], deadline: float | None = None, max_tokens: int = 1024
    ) -> str:
        chat = getattr(self.model, "chat", None)
        if not callable(chat):
            raise BackendError(
                self.model_problem
                or f"the hybrid backend's model ({self.settings.model}) cannot follow instructions"
            )
        answer: str = await chat(messages, deadline=deadline, max_tokens=max_tokens)
        return answer

    async def reply(
        self,
        messages: list[dict[str, str]],
        limits: ChatLimits,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        """The model's answer to a conversation (serve-model's chat endpoint)."""
        reply = getattr(self.model, "reply", None)
        if not callable(reply) or not self.follows_instructions:
            raise UnfitRequest(
                self.model_problem
                or f"the hybrid backend's model ({self.settings.model}) cannot follow instructions"
            )
        answer: ChatReply = await reply(messages, limits, on_text)
        return answer

    # --- completions ----------------------------------------------------------------------
    async def _lookup_first(
        self, prompt: CompletionPrompt, limits: GenerationLimits
    ) -> tuple[list[Candidate], bool]:
        """The lookup's candidates, and whether they are sure enough to skip the model (never,
        when the model goes first)."""
        quick = await self.lookup.generate(prompt, limits)
        sure = self.model is None or (
            not self.model_first and lookup_is_sure(quick, self.settings.lookup_first)
        )
        if sure and quick:
            self.counters["lookup_first"] += 1
        return quick, sure

    @property
    def answers_early(self) -> bool:
        """Whether ``generate_in_turn`` may hand out the lookup's answer before the model's."""
        return (
            self.model is not None
            and not self.model_first
            and self.settings.while_waiting == "lookup"
        )

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        return await self.generate_in_turn(prompt, limits, early=None)

    async def generate_in_turn(
        self, prompt: CompletionPrompt, limits: GenerationLimits, early: EarlyAnswer | None
    ) -> list[Candidate]:
        """The hybrid's answer; where the model is asked and ``answers_early``, the lookup's
        suggestion goes to ``early`` first, to be shown while the model writes."""
        quick, sure = await self._lookup_first(prompt, limits)
        if sure or self.model is None:
            return quick
        if early is not None and quick and self.answers_early:
            early(quick)
        due = model_deadline(limits.deadline, time.monotonic())
        answer = await self._ask_model(self.model, prompt, limits, due, bool(quick))
        counter, found = combined(quick, answer, limits.candidates, model_first=self.model_first)
        if found:
            self.counters[counter] += 1
        return found

    async def _ask_model(
        self,
        model: Backend,
        prompt: CompletionPrompt,
        limits: GenerationLimits,
        due: float | None,
        fallback: bool,
    ) -> list[Candidate]:
        """The model's candidates, or [] when it failed, ended past ``due`` or gave nothing.
        A model error is raised only when there is no ``fallback`` to answer with."""
        if due is not None and time.monotonic() >= due:
            return []
        asked = dataclasses.replace(limits, deadline=due)
        try:
            async with asyncio.timeout(None if due is None else due - time.monotonic()):
                answer = await model.generate(prompt, asked)
        except TimeoutError:
            log.info("hybrid: the %s model missed its deadline", self.settings.model)
            return []
        except BackendError as error:
            if not fallback:
                raise
            log.warning("hybrid: the %s model failed (the lookup answers): %s", model.name, error)
            return []
        # An engine that stops at its deadline hands back what it had: cut short, and so
        # worse than a lookup answer where there is one.
        if fallback and due is not None and time.monotonic() >= due:
            return []
        return answer

    async def stream(
        self, prompt: CompletionPrompt, limits: GenerationLimits
    ) -> AsyncIterator[str]:
        """The best candidate in pieces: the lookup's in one piece where it is sure (or the
        model has nothing), else the model's as it is generated. Pieces that went out are not
        taken back: a model that fails or runs out of time after its first piece ends there."""
        quick, sure = await self._lookup_first(prompt, limits)
        model = self.model
        if sure or model is None:
            if quick:
                yield quick[0].text
            return
        due = model_deadline(limits.deadline, time.monotonic())
        source = getattr(model, "stream", None)
        if not callable(source):
            answer = await self._ask_model(model, prompt, limits, due, bool(quick))
            chosen = answer or quick
            if chosen:
                yield chosen[0].text
            return
        sent = False
        pieces: AsyncIterator[str] = source(prompt, dataclasses.replace(limits, deadline=due))
        try:
            while True:
                # The timeout covers the wait for each piece, never a yield: the consumer's
                # own awaits must not be cancelled by it.
                async with asyncio.timeout(None if due is None else due - time.monotonic()):
                    piece = await anext(pieces, None)
                if piece is None:
                    break
                if piece:
                    sent = True
                    yield piece
        except TimeoutError:
            log.info("hybrid: the %s model's stream missed its deadline", self.settings.model)
        except BackendError:
            if sent or not quick:
                raise
        finally:
            close = getattr(pieces, "aclose", None)
            if close is not None:
                await close()
        if not sent and quick:
            self.counters["fallback"] += 1
            yield quick[0].text

    async def aclose(self) -> None:
        await self.lookup.aclose()
        if self.model is not None:
            await self.model.aclose()


def _model_label(model: Any) -> str:
    """``onnx 'qwen-0.5b'`` for an installed model, else the backend's name."""
    settings = getattr(model, "settings", None)
    named = getattr(settings, "model", None)
    kind = str(getattr(model, "name", "model"))
    return f"{kind} model {named!r}" if isinstance(named, str) and named else kind
