"""The completion session: typing-through cache, prompt LRU, shared generations, deadlines,
prefetch, early answers. The backends here are scripted test doubles (a model cannot run in a
unit test); the pipeline, caches and session around them are the real ones."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ghostcomplete.backends import Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.base import EarlyAnswer
from ghostcomplete.completion.caches import Anchor, PromptCache, Rest, TypingThroughCache
from ghostcomplete.completion.debounce import AdaptiveDebounce
from ghostcomplete.completion.pipeline import CompletionRequest, Pipeline
from ghostcomplete.completion.session import CompletionSession
from ghostcomplete.completion.settings import Settings
from ghostcomplete.context.documents import DocumentSnapshot

pytestmark = pytest.mark.timeout(20)

URI = "file:///w/app.py"
HEAD = "import os\n\ndef load_settings(path):\n    return "


class ScriptedBackend:
    """Answers ``answer`` after ``delay`` seconds; records calls and cancellations."""

    name = "scripted"
    fim_family = None
    remote = False

    def __init__(self, answer: str, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.calls = 0
        self.cancelled = 0
        self.prompts: list[CompletionPrompt] = []

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        self.calls += 1
        self.prompts.append(prompt)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return [Candidate(self.answer, "scripted")]

    async def aclose(self) -> None:
        return None


def make_session(
    backend: object, timeout_ms: int = 1000, found: list[CompletionRequest] | None = None
) -> CompletionSession:
    """A session over ``backend``; ``found`` collects the requests told of a better answer."""
    settings = Settings()
    settings = dataclasses.replace(
        settings,
        completion=dataclasses.replace(
            settings.completion, timeout_ms=timeout_ms, debounce="fixed", debounce_ms=0
        ),
    )
    return CompletionSession(
        Pipeline(backend, settings),  # type: ignore[arg-type]
        on_better_answer=None if found is None else found.append,
    )


def at_end(text: str, version: int = 1) -> CompletionRequest:
    document = DocumentSnapshot(URI, "python", text, version)
    lines = text.split("\n")
    return CompletionRequest(document, len(lines) - 1, len(lines[-1]))


async def test_typing_through_a_suggestion_is_answered_from_memory() -> None:
    backend = ScriptedBackend("yaml.safe_load(open(path))")
    session = make_session(backend)
    first = await session.complete(at_end(HEAD))
    assert first.texts == ["yaml.safe_load(open(path))"] and first.backend_called
    typed = await session.complete(at_end(HEAD + "yaml.sa", 2))
    assert typed.texts == ["fe_load(open(path))"] and typed.cache == "typing"
    assert typed.origins == ["scripted"]  # the cache says who wrote what it hands out
    assert backend.calls == 1


async def test_a_suggestion_a_filter_changed_still_names_its_writer() -> None:
    backend = ScriptedBackend("yaml.safe_load(open(path))   \n")  # trimmed by the filters
    result = await make_session(backend).complete(at_end(HEAD))
    assert result.texts == ["yaml.safe_load(open(path))"] and result.origins == ["scripted"]


async def test_cache_never_answers_when_the_text_no_longer_fits() -> None:
    backend = ScriptedBackend("yaml.safe_load(open(path))")
    session = make_session(backend)
    await session.complete(at_end(HEAD))
    # Typed something the suggestion does not start with.
    other = await session.complete(at_end(HEAD + "json.", 2))
    assert other.cache is None
    # Same prefix, but the text before the cursor changed further up.
    edited = await session.complete(at_end(HEAD.replace("import os", "import sys") + "yaml.sa", 3))
    assert edited.cache is None
    # Same prefix, different suffix.
    request = at_end(HEAD + "yaml.sa")
    document = dataclasses.replace(request.document, text=request.document.text + "\nprint(1)\n")
    changed = await session.complete(dataclasses.replace(request, document=document))
    assert changed.cache is None
    assert backend.calls == 4


@pytest.mark.parametrize("remote", [False, True])
async def test_a_local_backend_sees_the_whole_document_and_a_remote_one_only_the_budget(
    remote: bool,
) -> None:
    backend = ScriptedBackend("x")
    backend.remote = remote  # type: ignore[misc]
    settings = Settings()
    settings = dataclasses.replace(
        settings,
        budget=dataclasses.replace(settings.budget, max_tokens=256),
        completion=dataclasses.replace(settings.completion, debounce="fixed", debounce_ms=0),
    )
    session = CompletionSession(Pipeline(backend, settings))  # type: ignore[arg-type]
    far = "".join(f"def handler_{n}(event):\n    return route(event, {n})\n\n" for n in range(300))
    text = far + HEAD + "\n\n# the end\n"
    lines = HEAD.split("\n")
    row = far.count("\n") + len(lines) - 1
    await session.complete(CompletionRequest(DocumentSnapshot(URI, "python", text, 1), row, 11))
    prompt = backend.prompts[-1]
    assert len(prompt.context.prefix) < len(far)  # the budget cut the prefix
    if remote:
        assert (prompt.before_cursor, prompt.after_cursor) == ("", "")
    else:
        assert prompt.before_cursor == far + HEAD
        assert prompt.after_cursor == "\n\n# the end\n"


def test_typing_cache_unit() -> None:
    cache = TypingThroughCache()
    prefix, suffix = "x = compute(", ")\n"
    cache.remember_at(URI, Anchor.of(prefix, suffix), ["alpha, beta", "alpine"], ["onnx"])
    # The rest of each, and who wrote it ("" where the writer was not given).
    assert cache.answer(URI, prefix + "alp", suffix) == Rest(["ha, beta", "ine"], ["onnx", ""])
    assert cache.answer(URI, prefix + "alpi", suffix) == Rest(["ne"], [""])
    assert cache.answer(URI, prefix + "alpine", suffix) is None  # nothing left to offer
    assert cache.answer(URI, prefix + "b", suffix) is None
    assert cache.answer(URI, "y" + prefix[1:] + "alp", suffix) is None
    assert cache.answer(URI, prefix + "alp", "]\n") is None
    assert cache.answer(URI, prefix[:-1], suffix) is None  # deleted back past the anchor
    cache.forget(URI)
    assert cache.answer(URI, prefix, suffix) is None


def test_prompt_cache_is_bounded_lru() -> None:
    cache = PromptCache(capacity=2)
    cache.put("a", [Candidate("1")])
    cache.put("b", [Candidate("2")])
    assert cache.get("a") == [Candidate("1")]
    cache.put("c", [Candidate("3")])
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2


async def test_same_prompt_is_answered_from_the_lru() -> None:
    backend = ScriptedBackend("yaml.safe_load(path)")
    session = make_session(backend)
    await session.complete(at_end(HEAD))
    session.typing.forget(URI)
    again = await session.complete(at_end(HEAD, 2))
    assert again.cache == "prompt" and again.texts == ["yaml.safe_load(path)"]
    assert backend.calls == 1


async def test_a_request_that_extends_a_running_generation_shares_it() -> None:
    backend = ScriptedBackend("yaml.safe_load(path)", delay=0.3)
    session = make_session(backend)
    first = asyncio.ensure_future(session.complete(at_end(HEAD)))
    await asyncio.sleep(0.05)
    first.cancel()  # superseded by the keystroke below, as the server does
    second = await session.complete(at_end(HEAD + "ya", 2))
    assert second.texts == ["ml.safe_load(path)"] and second.cache == "inflight"
    assert second.origins == ["scripted"]
    assert backend.calls == 1 and backend.cancelled == 0


async def test_an_extension_the_generation_does_not_match_starts_afresh() -> None:
    backend = ScriptedBackend("yaml.safe_load(path)", delay=0.2)
    session = make_session(backend)
    first = asyncio.ensure_future(session.complete(at_end(HEAD)))
    await asyncio.sleep(0.05)
    first.cancel()
    backend.answer = "on.load(path)"
    second = await session.complete(at_end(HEAD + "js", 2))
    assert second.cache is None and second.texts == ["on.load(path)"]
    assert backend.calls == 2 and backend.cancelled == 0
    # Both waits count as backend time (~0.15 s on the first generation, 0.2 s on its own),
    # not as server overhead.
    assert second.timings_ms["backend"] >= 330


async def test_a_request_elsewhere_cancels_the_running_generation() -> None:
    backend = ScriptedBackend("yaml.safe_load(path)", delay=0.3)
    session = make_session(backend)
    first = asyncio.ensure_future(session.complete(at_end(HEAD)))
    await asyncio.sleep(0.05)
    first.cancel()
    backend.answer = "json.load(path)"
    second = await session.complete(at_end(HEAD.replace("return ", "data = "), 2))
    assert second.cache is None and second.texts == ["json.load(path)"]
    assert backend.calls == 2 and backend.cancelled == 1


async def test_an_unadopted_generation_is_cancelled_after_cancel_request() -> None:
    backend = ScriptedBackend("yaml.safe_load(path)", delay=1.0)
    session = make_session(backend)
    request = asyncio.ensure_future(session.complete(at_end(HEAD)))
    await asyncio.sleep(0.05)
    request.cancel()
    await asyncio.sleep(0.2)
    assert backend.cancelled == 1


async def test_deadline_answers_nothing_and_on_time() -> None:
    backend = ScriptedBackend("late", delay=2.0)
    session = make_session(backend, timeout_ms=200)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await session.complete(at_end(HEAD))
    elapsed = loop.time() - started
    assert result.texts == [] and result.skipped == "deadline passed"
    assert elapsed < 1.0


async def test_prefetch_after_accept_makes_the_next_request_free() -> None:
    backend = ScriptedBackend("yaml.safe_load(path)")
    session = make_session(backend)
    request = at_end(HEAD)
    first = await session.complete(request)
    (item,) = first.item_ids  # the session keeps what it offered
    assert session.offers.get(item) is not None
    backend.answer = "  # parsed"
    accepted = at_end(HEAD + first.texts[0], 2)
    session.prefetch_after_accept(item, accepted.document, [])
    await asyncio.sleep(0.05)
    nxt = await session.complete(accepted)
    assert nxt.cache in ("typing", "inflight") and nxt.texts == ["  # parsed"]
    assert backend.calls == 2 and session.counters.prefetches == 1


async def test_prefetch_after_show_computes_as_if_accepted() -> None:
    backend = ScriptedBackend("yaml.safe_load(path)")
    session = make_session(backend)
    request = at_end(HEAD)
    first = await session.complete(request)
    (item,) = first.item_ids
    backend.answer = "  # parsed"
    session.prefetch_after_show(item, request.document, [])
    await asyncio.sleep(0.05)
    nxt = await session.complete(at_end(HEAD + first.texts[0], 2))
    assert nxt.cache == "typing" and nxt.texts == ["  # parsed"]


def test_adaptive_debounce() -> None:
    debounce = AdaptiveDebounce()
    now = 0.0
    for _ in range(20):  # steady typing, one key every 120 ms
        now += 0.12
        debounce.request_arrived(now)
    mid_word = debounce.delay_ms("    valu", "")
    after_dot = debounce.delay_ms("    value.", "")
    assert 60 < mid_word < 200
    assert after_dot == pytest.approx(mid_word / 2)
    for _ in range(20):
        debounce.backend_answered(2.0)  # a backend that answers in 2 ms
    assert debounce.delay_ms("    valu", "") < mid_word
    debounce.fixed_ms = 30
    assert debounce.delay_ms("    valu", "") == 30
    slow = AdaptiveDebounce(max_ms=100)
    slow.keystroke_gap_ms.value = 5000
    assert slow.delay_ms("x", "") == 100


# --- early answers: a backend that hands a typed keystroke's request a first answer (the
# hybrid's lookup, while its model writes) and goes on; its final answer waits on an event.
class TwoStepBackend:
    """Gives ``first`` early, then ``final`` once ``release`` is set."""

    name = "two-step"
    fim_family = None
    remote = False
    answers_early = True

    def __init__(self, first: str, final: str) -> None:
        self.first = first
        self.final = final
        self.release = asyncio.Event()
        self.calls = 0
        self.cancelled = 0
        self.finished = 0

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        return await self.generate_in_turn(prompt, limits)

    async def generate_in_turn(
        self, prompt: CompletionPrompt, limits: GenerationLimits, early: EarlyAnswer | None = None
    ) -> list[Candidate]:
        self.calls += 1
        if early is not None and self.first:
            early([Candidate(self.first, "lookup:prefix")])
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return [Candidate(self.final, "onnx"), Candidate(self.first, "lookup:prefix")]

    async def aclose(self) -> None:
        return None


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_typed_request_gets_the_early_answer_and_hears_of_the_better_one() -> None:
    backend = TwoStepBackend("path", "yaml.safe_load(open(path))")
    found: list[CompletionRequest] = []
    session = make_session(backend, 2000, found)
    request = at_end(HEAD)
    first = await session.complete(request)
    assert first.texts == ["path"] and first.origins == ["lookup:prefix"] and first.early
    assert backend.finished == 0 and not found  # the model goes on after the answer
    backend.release.set()
    await settle()
    assert backend.finished == 1 and found == [request]
    # The editor asks again (an explicit request): the better answer, from memory, first.
    again = await session.complete(request, automatic=False)
    assert again.cache == "typing" and again.texts[0] == "yaml.safe_load(open(path))"
    assert again.origins[0] == "onnx" and backend.calls == 1


async def test_an_explicit_request_waits_for_the_final_answer() -> None:
    backend = TwoStepBackend("path", "yaml.safe_load(open(path))")
    found: list[CompletionRequest] = []
    session = make_session(backend, 2000, found)
    waiting = asyncio.ensure_future(session.complete(at_end(HEAD), automatic=False))
    await settle()
    assert not waiting.done()
    backend.release.set()
    result = await waiting
    assert result.texts[0] == "yaml.safe_load(open(path))" and not result.early
    assert not found


async def test_no_word_when_the_final_answer_is_the_early_one() -> None:
    backend = TwoStepBackend("path", "path")
    found: list[CompletionRequest] = []
    session = make_session(backend, 2000, found)
    assert (await session.complete(at_end(HEAD))).early
    backend.release.set()
    await settle()
    assert backend.finished == 1 and not found


async def test_typing_through_the_early_answer_is_answered_from_memory() -> None:
    backend = TwoStepBackend("path.read_text()", "yaml.safe_load(open(path))")
    session = make_session(backend, 2000, [])
    await session.complete(at_end(HEAD))
    typed = await session.complete(at_end(HEAD + "path.", 2))
    assert typed.cache == "typing" and typed.texts == ["read_text()"]
    assert backend.calls == 1


async def test_typing_on_the_model_answer_shares_it_when_it_comes() -> None:
    backend = TwoStepBackend("path", "yaml.safe_load(open(path))")
    session = make_session(backend, 2000, [])
    await session.complete(at_end(HEAD))
    # "y" is no start of the early answer: the request waits on the running generation.
    typed = asyncio.ensure_future(session.complete(at_end(HEAD + "y", 2)))
    await settle()
    assert not typed.done()
    backend.release.set()
    result = await typed
    assert result.cache == "inflight" and result.texts[0] == "aml.safe_load(open(path))"
    assert backend.calls == 1


async def test_an_edit_elsewhere_cancels_the_model_after_an_early_answer() -> None:
    backend = TwoStepBackend("path", "yaml.safe_load(open(path))")
    found: list[CompletionRequest] = []
    session = make_session(backend, 2000, found)
    await session.complete(at_end(HEAD))
    elsewhere = at_end("import sys\n" + HEAD, 2)
    other = await session.complete(elsewhere)
    assert backend.cancelled == 1 and other.early  # the new request has its own early answer
    backend.release.set()
    await settle()
    assert found == [elsewhere]  # and only it hears of a better one


async def test_an_early_answer_the_filters_empty_waits_for_the_final_one() -> None:
    # Blank: nothing of it is left to show after the filters.
    backend = TwoStepBackend("   ", "yaml.safe_load(open(path))")
    session = make_session(backend, 2000, [])
    waiting = asyncio.ensure_future(session.complete(at_end(HEAD)))
    await settle()
    assert not waiting.done()
    backend.release.set()
    result = await waiting
    assert not result.early and result.texts[0] == "yaml.safe_load(open(path))"


async def test_an_explicit_request_where_an_early_answer_shows_waits_for_the_final_one() -> None:
    backend = TwoStepBackend("path", "yaml.safe_load(open(path))")
    session = make_session(backend, 2000, [])
    request = at_end(HEAD)
    assert (await session.complete(request)).early
    # The editor's explicit trigger at the same place: not the early answer from memory.
    waiting = asyncio.ensure_future(session.complete(request, automatic=False))
    await settle()
    assert not waiting.done()
    backend.release.set()
    result = await waiting
    assert result.texts[0] == "yaml.safe_load(open(path))" and result.cache == "inflight"
    assert backend.calls == 1
