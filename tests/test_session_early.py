"""Early answers: a backend that hands a typed keystroke's request a first answer (the hybrid's
lookup, while its model writes) and goes on. The backend here is a scripted test double whose
final answer waits on an event the test sets (a model cannot run in a unit test); the pipeline,
caches and session around it are the real ones."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import pytest

from ghostcomplete.backends import Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.completion.pipeline import CompletionRequest, Pipeline
from ghostcomplete.completion.session import CompletionSession
from ghostcomplete.completion.settings import Settings
from ghostcomplete.context.documents import DocumentSnapshot

pytestmark = pytest.mark.timeout(20)

URI = "file:///w/app.py"
HEAD = "import os\n\ndef load_settings(path):\n    return "


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
        return await self.generate_in_turn(prompt, limits, None)

    async def generate_in_turn(
        self,
        prompt: CompletionPrompt,
        limits: GenerationLimits,
        early: Callable[[list[Candidate]], None] | None,
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


def make_session(backend: TwoStepBackend, found: list[CompletionRequest]) -> CompletionSession:
    settings = Settings()
    settings = dataclasses.replace(
        settings,
        completion=dataclasses.replace(
            settings.completion, timeout_ms=2000, debounce="fixed", debounce_ms=0
        ),
    )
    return CompletionSession(
        Pipeline(backend, settings),  # type: ignore[arg-type]
        on_better_answer=found.append,
    )


def at_end(text: str, version: int = 1) -> CompletionRequest:
    document = DocumentSnapshot(URI, "python", text, version)
    lines = text.split("\n")
    return CompletionRequest(document, len(lines) - 1, len(lines[-1]))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_typed_request_gets_the_early_answer_and_hears_of_the_better_one() -> None:
    backend = TwoStepBackend("path", "yaml.safe_load(open(path))")
    found: list[CompletionRequest] = []
    session = make_session(backend, found)
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
    session = make_session(backend, found)
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
    session = make_session(backend, found)
    assert (await session.complete(at_end(HEAD))).early
    backend.release.set()
    await settle()
    assert backend.finished == 1 and not found


async def test_typing_through_the_early_answer_is_answered_from_memory() -> None:
    backend = TwoStepBackend("path.read_text()", "yaml.safe_load(open(path))")
    session = make_session(backend, [])
    await session.complete(at_end(HEAD))
    typed = await session.complete(at_end(HEAD + "path.", 2))
    assert typed.cache == "typing" and typed.texts == ["read_text()"]
    assert backend.calls == 1


async def test_typing_on_the_model_answer_shares_it_when_it_comes() -> None:
    backend = TwoStepBackend("path", "yaml.safe_load(open(path))")
    session = make_session(backend, [])
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
    session = make_session(backend, found)
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
    session = make_session(backend, [])
    waiting = asyncio.ensure_future(session.complete(at_end(HEAD)))
    await settle()
    assert not waiting.done()
    backend.release.set()
    result = await waiting
    assert not result.early and result.texts[0] == "yaml.safe_load(open(path))"


async def test_an_explicit_request_where_an_early_answer_shows_waits_for_the_final_one() -> None:
    backend = TwoStepBackend("path", "yaml.safe_load(open(path))")
    session = make_session(backend, [])
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
