"""The completion session: supersede, caches, debounce, shared generations, prefetch, deadlines.

A newer request for the same document supersedes the one in flight: this is the one place
that cancels it. One request goes: cut at the cursor -> typed through a shown suggestion?
answer the rest -> a running generation this request extends? share it -> debounce
(cancellable) -> context and ranking -> same prompt as before? answer from the LRU -> start a
generation -> wait for it until the deadline -> filters. Generations are tasks of their own so
that a newer request can adopt one instead of starting again; one that nobody adopts is
cancelled, down to the backend.

A backend that can answer early (the hybrid with ``whileWaiting: "lookup"``: the lookup's
suggestion while the model writes) hands a typed keystroke's request a first answer and
goes on. Its final answer then feeds the caches, and when it differs from the early one the
session tells the client (``on_better_answer``) so that the editor asks again and shows it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from ghostcomplete.backends import BackendError, Candidate
from ghostcomplete.completion.caches import (
    Anchor,
    PromptCache,
    TypingThroughCache,
    rest_after_typing,
)
from ghostcomplete.completion.debounce import AdaptiveDebounce
from ghostcomplete.completion.offers import Offer, OfferLedger
from ghostcomplete.completion.pipeline import (
    CompletionRequest,
    CompletionResult,
    Pipeline,
    Prepared,
)
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.positions import offset_at, position_at

log = logging.getLogger("ghostcomplete")

# A generation whose requester went away is cancelled unless a newer request adopts it
# within this many seconds.
_ADOPTION_WINDOW_S = 0.05


@dataclass
class Generation:
    """A backend call in flight (or done), with where it was made."""

    uri: str
    anchor: Anchor
    prepared: Prepared
    task: asyncio.Task[list[Candidate]]
    # Requests waiting for it right now; one nobody waits for is cancelled (see _wait_for).
    waiters: int = 0
    # The request it was started for, where that request may take an early answer; the
    # early answer itself, once the backend gives one; and the first text shown from it.
    asker: CompletionRequest | None = None
    early: asyncio.Future[list[Candidate]] | None = None
    shown_early: str | None = None


class _GenerationLost(Exception):
    """The generation a request waited for was cancelled under it (not the request itself)."""


@dataclass
class SessionCounters:
    requests: int = 0
    backend_calls: int = 0
    prefetches: int = 0
    cache_hits: dict[str, int] = field(default_factory=dict)


# A backend that misses the deadline this many times in a row is reported as failing.
DEADLINE_MISSES_BEFORE_ERROR = 3


class CompletionSession:
    def __init__(
        self,
        pipeline: Pipeline,
        on_backend_error: Callable[[BackendError], None] | None = None,
        on_backend_recovered: Callable[[], None] | None = None,
        on_better_answer: Callable[[CompletionRequest], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        # Told about every backend failure (also those of generations nobody waits for any
        # more) and about a backend that keeps missing deadlines.
        self.on_backend_error = on_backend_error
        # Told when the backend answered in time (the only proof that it works again).
        self.on_backend_recovered = on_backend_recovered
        # Told when a request that was answered early has a better answer in the caches now
        # (the server asks the editor to request again).
        self.on_better_answer = on_better_answer
        self.deadline_misses = 0
        self.typing = TypingThroughCache()
        self.prompts = PromptCache()
        self.debounce = AdaptiveDebounce()
        self.generations: dict[str, Generation] = {}
        # The request in flight per document: a newer one cancels it.
        self.requests: dict[str, asyncio.Task[CompletionResult]] = {}
        self.offers = OfferLedger()
        self.counters = SessionCounters()

    # --- requests --------------------------------------------------------------------------
    async def complete(
        self, request: CompletionRequest, automatic: bool = True
    ) -> CompletionResult:
        """The answer to one request; a newer request for the same document supersedes it
        (its result is empty, skipped "superseded"). The caller's own cancellation (the
        client's $/cancelRequest) propagates."""
        uri = request.document.uri
        previous = self.requests.get(uri)
        if previous is not None:
            previous.cancel()
        task = asyncio.ensure_future(self._answer(request, automatic))
        self.requests[uri] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            log.info("[%s] superseded", request.completion_id)
            result = self.pipeline.result_for(request, automatic, skipped="superseded")
            result.dropped = True
            return result
        finally:
            if self.requests.get(uri) is task:
                del self.requests[uri]

    async def _answer(self, request: CompletionRequest, automatic: bool) -> CompletionResult:
        started = time.monotonic()
        deadline = started + self.pipeline.settings.deadline_ms / 1000
        self.counters.requests += 1
        result = self.pipeline.result_for(request, automatic)
        try:
            await self._complete(request, automatic, started, deadline, result)
        except BackendError as error:
            log.warning("[%s] backend failed: %s", request.completion_id, error)
            self._backend_failed(error)
            result.texts, result.skipped, result.dropped = [], "backend failed", True
        except Exception:
            log.exception("[%s] completion failed", request.completion_id)
            result.texts, result.skipped, result.dropped = [], "failed", True
        finally:
            result.timings_ms["total"] = round((time.monotonic() - started) * 1000, 3)
        if result.cache:
            self.counters.cache_hits[result.cache] = (
                self.counters.cache_hits.get(result.cache, 0) + 1
            )
        answered = result.backend_called or result.cache == "inflight"
        recovered = answered and self.deadline_misses == 0 and not result.dropped
        if recovered and self.on_backend_recovered is not None:
            self.on_backend_recovered()
        self._record_offers(result)
        return result

    def _backend_failed(self, error: BackendError) -> None:
        if self.on_backend_error is not None:
            self.on_backend_error(error)

    def _record_offers(self, result: CompletionResult) -> None:
        request = result.request
        if request is None:
            return
        for item, text in zip(result.item_ids, result.texts, strict=True):
            where = (request.document.uri, request.line, request.character)
            self.offers.record(item, Offer(*where, text, request.encoding))

    async def _complete(
        self,
        request: CompletionRequest,
        automatic: bool,
        started: float,
        deadline: float,
        result: CompletionResult,
    ) -> None:
        cursor = self.pipeline.cut(request, result)
        if cursor is None:
            return
        uri = request.document.uri
        if automatic:
            self.debounce.request_arrived(started)

        running = self.generations.get(uri)
        # An explicit request where an early answer was shown waits for the final one, which
        # the typing cache does not hold yet (it holds the early one).
        wait_for_final = (
            not automatic
            and running is not None
            and running.shown_early is not None
            and not running.task.done()
        )
        remembered = (
            None if wait_for_final else self.typing.answer(uri, cursor.prefix, cursor.suffix)
        )
        if remembered is not None:
            result.texts, result.origins = remembered.texts, remembered.origins
            result.cache = "typing"
            return

        if running is not None and not running.task.done():
            typed = running.anchor.typed_since(cursor.prefix, cursor.suffix)
            if typed is None:
                running.task.cancel()  # superseded: stop the backend too
            else:
                try:
                    texts = await self._wait_for(running, deadline, result)
                except _GenerationLost:
                    texts = []
                else:
                    if texts is None:
                        return  # the deadline passed
                shared = rest_after_typing(texts, typed, result.origins)
                if shared.texts:
                    result.texts, result.origins = shared.texts, shared.origins
                    result.cache = "inflight"
                    return
                result.texts, result.origins, result.skipped = [], [], None

        if automatic:
            self._configure_debounce()
            delay = self.debounce.delay_ms(cursor.line_prefix, cursor.line_suffix)
            result.timings_ms["debounce"] = round(delay, 3)
            await asyncio.sleep(delay / 1000)  # a newer request cancels us here

        prepared = self.pipeline.prepare(request, cursor, deadline, result.timings_ms)
        result.record_prompt(prepared.prompt)
        key = _prompt_key(prepared)
        cached = self.prompts.get(key)
        if cached is not None:
            self.pipeline.finish(prepared, cached, result)
            result.cache = "prompt"
            anchor = Anchor.of(cursor.prefix, cursor.suffix)
            self.typing.remember_at(uri, anchor, result.texts, result.origins)
            return
        anchor = Anchor.of(cursor.prefix, cursor.suffix)
        generation = self._start(uri, anchor, prepared, key, request if automatic else None)
        result.backend_called = True
        try:
            texts = await self._wait_for(generation, deadline, result, take_early=True)
        except _GenerationLost:
            return
        if texts is not None:
            result.texts = texts

    def _configure_debounce(self) -> None:
        settings = self.pipeline.settings.completion
        self.debounce.max_ms = settings.debounce_max_ms
        self.debounce.fixed_ms = settings.debounce_ms if settings.debounce == "fixed" else None

    def _start(
        self,
        uri: str,
        anchor: Anchor,
        prepared: Prepared,
        key: Hashable,
        asker: CompletionRequest | None = None,
    ) -> Generation:
        """A generation of its own task; ``asker``: the typed keystroke's request it is
        for, which takes an early answer where the backend gives one."""
        self.counters.backend_calls += 1
        early: asyncio.Future[list[Candidate]] | None = None
        if asker is not None and getattr(self.pipeline.backend, "answers_early", False):
            early = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._generate(prepared, early))
        generation = Generation(uri, anchor, prepared, task, asker=asker, early=early)
        self.generations[uri] = generation
        task.add_done_callback(lambda done: self._remember(generation, key, done))
        return generation

    async def _generate(
        self, prepared: Prepared, early: asyncio.Future[list[Candidate]] | None = None
    ) -> list[Candidate]:
        started = time.monotonic()
        backend = self.pipeline.backend
        in_turn = getattr(backend, "generate_in_turn", None)
        if early is not None and callable(in_turn):

            def first(candidates: list[Candidate]) -> None:
                if not early.done():
                    early.set_result(candidates)

            candidates: list[Candidate] = await in_turn(prepared.prompt, prepared.limits, first)
        else:
            candidates = await backend.generate(prepared.prompt, prepared.limits)
        self.debounce.backend_answered((time.monotonic() - started) * 1000)
        return candidates

    def _remember(
        self, generation: Generation, key: Hashable, task: asyncio.Task[list[Candidate]]
    ) -> None:
        """A finished generation feeds the caches, even if its requester has gone."""
        if self.generations.get(generation.uri) is generation:
            del self.generations[generation.uri]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            if isinstance(error, BackendError):
                self._backend_failed(error)
            return
        candidates = task.result()
        if candidates:
            # An empty answer may be a backend that ran out of time: ask again next time.
            self.prompts.put(key, candidates)
        scratch = CompletionResult("", [])
        self.pipeline.finish(generation.prepared, candidates, scratch)
        self.typing.remember_at(generation.uri, generation.anchor, scratch.texts, scratch.origins)
        shown = generation.shown_early
        changed = shown is not None and bool(scratch.texts) and scratch.texts[0] != shown
        if changed and generation.asker is not None and self.on_better_answer is not None:
            self.on_better_answer(generation.asker)

    async def _wait_for(
        self,
        generation: Generation,
        deadline: float,
        result: CompletionResult,
        take_early: bool = False,
    ) -> list[str] | None:
        """The generation's filtered texts, or None when the deadline passed first. With
        ``take_early`` (the request the generation was started for), its early answer where
        the backend gives one first.

        Raises _GenerationLost when the generation was cancelled by someone else, and
        CancelledError when this request itself is cancelled; then, unless another request
        adopts the generation within a moment, it is cancelled too, down to the backend.
        """
        started = time.monotonic()
        generation.waiters += 1
        early = False
        try:
            candidates, early = await _first_answer(
                generation, max(0.0, deadline - time.monotonic()), take_early
            )
            if early:
                self.pipeline.finish(generation.prepared, candidates, result)
                if not result.texts:
                    # Nothing of the early answer passes the filters: wait for the final one.
                    candidates, early = await _first_answer(
                        generation, max(0.0, deadline - time.monotonic()), False
                    )
        except TimeoutError:
            result.skipped = "deadline passed"
            self._missed_deadline()
            return None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                if not generation.task.done():
                    self._cancel_if_abandoned(generation)
                raise
            raise _GenerationLost() from None
        finally:
            generation.waiters -= 1
            # Added, not set: a request that waited on a generation which gave it nothing and
            # then started its own waited on the backend twice.
            waited = (time.monotonic() - started) * 1000 + result.timings_ms.get("backend", 0.0)
            result.timings_ms["backend"] = round(waited, 3)
        self.deadline_misses = 0
        if early:
            # Finished above, with something to show. The backend goes on; its final answer
            # is remembered, and told about when it differs from this one (_remember).
            result.early = True
            generation.shown_early = result.texts[0]
            self.typing.remember_at(generation.uri, generation.anchor, result.texts, result.origins)
        else:
            self.pipeline.finish(generation.prepared, candidates, result)
        return result.texts

    def _missed_deadline(self) -> None:
        self.deadline_misses += 1
        if self.deadline_misses == DEADLINE_MISSES_BEFORE_ERROR:
            budget = self.pipeline.settings.deadline_ms
            self._backend_failed(
                BackendError(
                    f"the {self.pipeline.backend.name} backend gave no answer within "
                    f"completion.timeoutMs ({budget} ms) {self.deadline_misses} times in a row; "
                    "check that the model server is up and not overloaded"
                )
            )

    def _cancel_if_abandoned(self, generation: Generation) -> None:
        def check() -> None:
            if generation.waiters == 0 and not generation.task.done():
                generation.task.cancel()

        asyncio.get_running_loop().call_later(_ADOPTION_WINDOW_S, check)

    # --- offers and prefetch ---------------------------------------------------------------
    def prefetch_after_show(
        self, item_id: str, document: DocumentSnapshot, neighbours: list[DocumentSnapshot]
    ) -> None:
        """The suggestion is on screen: compute the next one as if it had been accepted."""
        if self.pipeline.settings.completion.prefetch != "shown":
            return
        offer = self.offers.get(item_id)
        if offer is None or offer.uri != document.uri:
            return
        offset = offset_at(document.text, offer.line, offer.character, offer.encoding)
        if offset is None:
            return
        text = document.text[:offset] + offer.text + document.text[offset:]
        accepted = DocumentSnapshot(document.uri, document.language_id, text, document.version)
        self._prefetch(accepted, offset + len(offer.text), neighbours)

    def prefetch_after_accept(
        self, item_id: str, document: DocumentSnapshot, neighbours: list[DocumentSnapshot]
    ) -> None:
        """The client inserted the suggestion: compute the next one now."""
        if self.pipeline.settings.completion.prefetch == "off":
            return
        offer = self.offers.get(item_id)
        if offer is None or offer.uri != document.uri:
            return
        offset = offset_at(document.text, offer.line, offer.character, offer.encoding)
        if offset is None or not document.text.startswith(offer.text, offset):
            return
        self._prefetch(document, offset + len(offer.text), neighbours)

    def _prefetch(
        self, document: DocumentSnapshot, offset: int, neighbours: list[DocumentSnapshot]
    ) -> None:
        line, character = position_at(document.text, offset)
        request = CompletionRequest(document, line, character, neighbours)
        probe = CompletionResult(request.completion_id, [])
        cursor = self.pipeline.cut(request, probe)
        if cursor is None:
            return
        if self.typing.answer(document.uri, cursor.prefix, cursor.suffix) is not None:
            return
        running = self.generations.get(document.uri)
        if running is not None and not running.task.done():
            return  # never cancel a live request's generation for a guess
        deadline = time.monotonic() + self.pipeline.settings.deadline_ms / 1000
        prepared = self.pipeline.prepare(request, cursor, deadline, probe.timings_ms)
        key = _prompt_key(prepared)
        if self.prompts.get(key) is not None:
            return
        self.counters.prefetches += 1
        self._start(document.uri, Anchor.of(cursor.prefix, cursor.suffix), prepared, key)

    def forget_answers(self) -> None:
        """Drop every remembered and running answer: the settings changed, and an answer
        made under the old ones (another backend, cut or gate) must not be shown again."""
        self.typing.clear()
        self.prompts.clear()
        for running in self.generations.values():
            running.task.cancel()
        self.generations.clear()

    def forget(self, uri: str) -> None:
        request = self.requests.pop(uri, None)
        if request is not None:
            request.cancel()
        self.typing.forget(uri)
        running = self.generations.pop(uri, None)
        if running is not None:
            running.task.cancel()
        self.pipeline.forget(uri)


async def _first_answer(
    generation: Generation, timeout: float, take_early: bool
) -> tuple[list[Candidate], bool]:
    """The generation's answer, or (``take_early``) its early one where that comes first with
    something in it, and True with it. TimeoutError past ``timeout``; CancelledError when
    the generation is cancelled or the caller is. Neither cancels the generation."""
    early = generation.early if take_early else None
    task = generation.task
    if early is not None and not task.done():
        started = time.monotonic()
        waiting: set[asyncio.Future[list[Candidate]]] = {task}
        if not early.done() or early.result():
            waiting.add(early)
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result(), False
        if early in done and early.result():
            return early.result(), True
        if not done:
            raise TimeoutError
        timeout = max(0.0, timeout - (time.monotonic() - started))
    return await asyncio.wait_for(asyncio.shield(task), timeout), False


def _prompt_key(prepared: Prepared) -> Hashable:
    prompt, limits = prepared.prompt, prepared.limits
    # Backends that copy from the whole document and the recent files see more than the
    # prompt text: key on them too (str hashes are cached on the object, so unchanged files
    # cost nothing to hash again).
    return (
        prompt.text,
        hash(prompt.before_cursor),
        hash(prompt.after_cursor),
        tuple(hash(text) for text in prompt.reference_texts),
        limits.scope,
        limits.max_lines,
        limits.max_chars,
        limits.candidates,
    )
