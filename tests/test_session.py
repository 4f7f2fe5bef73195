"""The completion session: typing-through cache, prompt LRU, shared generations, deadlines,
prefetch. The backend here is a scripted test double (a model cannot run in a unit test); the
pipeline, caches and session around it are the real ones."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ghostcomplete.backends import Candidate, CompletionPrompt, GenerationLimits
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


def make_session(backend: ScriptedBackend, timeout_ms: int = 1000) -> CompletionSession:
    settings = Settings()
    settings = dataclasses.replace(
        settings,
        completion=dataclasses.replace(
            settings.completion, timeout_ms=timeout_ms, debounce="fixed", debounce_ms=0
        ),
    )
    return CompletionSession(Pipeline(backend, settings))  # type: ignore[arg-type]


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
