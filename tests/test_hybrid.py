"""The hybrid backend: the lookup where it is sure, a model elsewhere, the lookup again when the
model fails or misses the deadline, and never late. The model is the built-in ONNX model or the
http backend against a loopback server that answers, fails or sleeps."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from http_fakes import FakeModelServer, Recorded, Reply

from ghostcomplete.backends import BackendSettings, LookupBackend, create_backend
from ghostcomplete.backends.base import (
    BackendError,
    Candidate,
    CompletionPrompt,
    GenerationLimits,
)
from ghostcomplete.backends.http.backend import HttpBackend
from ghostcomplete.backends.http.config import HttpSettings
from ghostcomplete.backends.hybrid.backend import (
    MODEL_FIRST_PARAMETERS,
    HybridBackend,
    combined,
    lookup_is_likelier,
    model_deadline,
    model_goes_first,
)
from ghostcomplete.backends.hybrid.config import HybridSettings
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.installed import parameter_count
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

pytestmark = pytest.mark.timeout(60)

# Three functions that end alike: the lookup copies the fourth's end from them, sure of it.
SURE = (
    "".join(
        f"def {verb}(client, method, url, headers):\n    log('{verb}')\n"
        "    return client.send(method, url, headers=headers)\n\n\n"
        for verb in ("get", "put", "post")
    )
    + "def delete(client, method, url, headers):\n    log('delete')\n    return client.send("
)
COPIED = "method, url, headers=headers)"
# Nothing to copy: the lookup has no answer, the model writes one.
UNSURE = "import numpy as np\n\n\ndef mean(values):\n    return np."
MODEL_TEXT = "the_model_wrote_this"


def prompt(prefix: str, family: str = "starcoder") -> CompletionPrompt:
    context = PackedContext(prefix, "", (), 0)
    return CompletionPrompt(
        "python",
        "a.py",
        context,
        text=render_fim(context, family, "python", "a.py"),
        stop=TEMPLATES[family].stop,
        before_cursor=prefix,
    )


def limits(seconds: float) -> GenerationLimits:
    return GenerationLimits(Scope.LINE, 400, 1, 1, time.monotonic() + seconds)


def onnx_hybrid(lookup_first: float = 0.3) -> HybridBackend:
    settings = BackendSettings(
        kind="hybrid",
        hybrid=HybridSettings(model="onnx", lookup_first=lookup_first),
        # The tiny model is unsure of all it writes: its whole answer, not gated by its chance.
        onnx=OnnxSettings(threads=1, cut="none"),
    )
    backend = create_backend(settings)
    assert isinstance(backend, HybridBackend) and backend.model is not None
    return backend


def http_hybrid(url: str, lookup_first: float = 1.0) -> HybridBackend:
    model = HttpBackend(HttpSettings(url=url, stream=False))
    return HybridBackend(LookupBackend(), model, HybridSettings("http", lookup_first))


async def answer_text(request: Recorded, reply: Reply) -> None:
    await reply.json({"choices": [{"index": 0, "text": MODEL_TEXT}]})


async def test_a_sure_lookup_answers_without_asking_the_model():
    backend = onnx_hybrid()
    calls = 0
    original = backend.model.generate  # type: ignore[union-attr]

    async def counted(*args: object) -> object:
        nonlocal calls
        calls += 1
        return await original(*args)  # type: ignore[arg-type]

    backend.model.generate = counted  # type: ignore[union-attr,method-assign]
    try:
        found = await backend.generate(prompt(SURE), limits(10))
    finally:
        await backend.aclose()
    assert [c.text for c in found] == [COPIED]
    assert found[0].origin == "lookup:prefix"
    assert found[0].details["confidence"] >= backend.settings.lookup_first
    assert calls == 0
    assert backend.counters["lookup_first"] == 1


async def test_an_unsure_lookup_asks_the_model_which_answers():
    backend = onnx_hybrid()
    try:
        asked = prompt(UNSURE, backend.fim_family or "starcoder")
        quick = await backend.lookup.generate(asked, limits(10))
        # Three candidates: the tiny model's greedy one is often empty, its samples are not
        # (they are seeded by the prompt: the same on every run).
        three = GenerationLimits(Scope.LINE, 400, 1, 3, time.monotonic() + 20)
        found = await backend.generate(asked, three)
    finally:
        await backend.aclose()
    assert quick == []  # nothing to copy
    assert found and all(c.text.strip() for c in found)
    assert all(c.origin.startswith("onnx") for c in found), found
    assert backend.counters == {"lookup_first": 0, "model": 1, "fallback": 0, "lookup_likelier": 0}


async def test_lookup_first_one_always_asks_the_model_and_keeps_the_lookup_as_alternative():
    async with FakeModelServer(answer_text) as server:
        backend = http_hybrid(server.base, lookup_first=1.0)
        try:
            asked = GenerationLimits(Scope.LINE, 400, 1, 2, time.monotonic() + 5)
            found = await backend.generate(prompt(SURE), asked)
        finally:
            await backend.aclose()
    assert [(c.text, c.origin) for c in found] == [
        (MODEL_TEXT, "http:openai"),
        (COPIED, "lookup:prefix"),
    ]


async def test_a_model_past_the_deadline_leaves_the_lookup_answer_in_time():
    async def sleepy(request: Recorded, reply: Reply) -> None:
        await reply.hang(10)

    budget = 0.4
    async with FakeModelServer(sleepy) as server:
        backend = http_hybrid(server.base)
        try:
            started = time.monotonic()
            found = await backend.generate(prompt(SURE), limits(budget))
            took = time.monotonic() - started
            assert await server.wait_for(lambda: server.requests[0].client_closed_early)
        finally:
            await backend.aclose()
    assert [(c.text, c.origin) for c in found] == [(COPIED, "lookup:prefix")]
    # It waited for the model nearly to the deadline and answered about then, not at the
    # model's 10 s: the upper bound leaves a loaded CI machine's scheduling a tenth of a second.
    assert 0.8 <= took / budget <= 1.25, took
    assert backend.counters["fallback"] == 1


async def test_a_model_that_errs_leaves_the_lookup_answer():
    async def broken(request: Recorded, reply: Reply) -> None:
        await reply.json({"error": {"message": "the GPU caught fire"}}, status=500)

    async with FakeModelServer(broken) as server:
        backend = http_hybrid(server.base)
        try:
            found = await backend.generate(prompt(SURE), limits(5))
            # With nothing from the lookup either, the model's error is what the user hears.
            with pytest.raises(BackendError, match="GPU caught fire"):
                await backend.generate(prompt(UNSURE), limits(5))
        finally:
            await backend.aclose()
    assert [(c.text, c.origin) for c in found] == [(COPIED, "lookup:prefix")]


async def test_a_model_that_cannot_be_built_leaves_the_lookup_with_one_problem():
    settings = BackendSettings(
        kind="hybrid", onnx=OnnxSettings(path="/nowhere/no-model"), hybrid=HybridSettings()
    )
    backend = create_backend(settings)
    assert isinstance(backend, HybridBackend)
    try:
        assert backend.model is None
        assert backend.model_problem is not None and "no model file" in backend.model_problem
        assert "lookup only" in backend.description
        assert not backend.follows_instructions
        found = await backend.generate(prompt(SURE), limits(5))
        assert [c.origin for c in found] == ["lookup:prefix"]
        with pytest.raises(BackendError, match="no model file"):
            await backend.chat([{"role": "user", "content": "hi"}])
    finally:
        await backend.aclose()


async def test_cancelling_the_request_cancels_the_model_call():
    async def sleepy(request: Recorded, reply: Reply) -> None:
        await reply.hang(10)

    async with FakeModelServer(sleepy) as server:
        backend = http_hybrid(server.base)
        try:
            task = asyncio.ensure_future(backend.generate(prompt(SURE), limits(8)))
            assert await server.wait_for(lambda: bool(server.requests))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await server.wait_for(lambda: server.requests[0].client_closed_early)
        finally:
            await backend.aclose()


async def test_stream_gives_the_model_pieces_or_the_lookup_answer():
    pieces = ["model", "_piece"]

    async def streamed(request: Recorded, reply: Reply) -> None:
        chunks = [json.dumps({"choices": [{"index": 0, "text": p}]}) for p in pieces]
        await reply.stream([*chunks, "[DONE]"], delay_s=0.01)

    async def sleepy(request: Recorded, reply: Reply) -> None:
        await reply.hang(10)

    async with FakeModelServer(streamed) as server:
        model = HttpBackend(HttpSettings(url=server.base))
        backend = HybridBackend(LookupBackend(), model, HybridSettings("http", 1.0))
        try:
            got = [piece async for piece in backend.stream(prompt(SURE), limits(5))]
        finally:
            await backend.aclose()
    assert "".join(got) == "model_piece"
    async with FakeModelServer(sleepy) as server:
        backend = http_hybrid(server.base)
        try:
            started = time.monotonic()
            got = [piece async for piece in backend.stream(prompt(SURE), limits(0.4))]
            assert time.monotonic() - started < 0.4 * 1.05
        finally:
            await backend.aclose()
    assert got == [COPIED]


def test_the_model_deadline_leaves_a_margin():
    assert model_deadline(None, 5.0) is None
    due = model_deadline(11.0, 10.0)
    assert due is not None and 10.9 < due < 11.0
    assert model_deadline(10.01, 10.0) == pytest.approx(9.99)


def test_the_lookup_goes_first_only_where_its_calibrated_chance_is_higher():
    lookup = [Candidate("copied", "lookup:prefix", {"confidence": 0.25})]
    sure_model = [Candidate("written", "onnx", {"confidence": 0.6})]
    unsure_model = [Candidate("written", "onnx", {"confidence": 0.1})]
    assert not lookup_is_likelier(lookup, sure_model)
    assert lookup_is_likelier(lookup, unsure_model)
    # A model with no calibrated chance (cut: none, http) keeps going first.
    assert not lookup_is_likelier(lookup, [Candidate("written", "onnx")])
    assert not lookup_is_likelier([], unsure_model)


def test_with_the_model_first_its_answer_leads_whatever_the_two_chances():
    lookup = [Candidate("copied", "lookup:prefix", {"confidence": 0.9})]
    unsure_model = [Candidate("written", "onnx", {"confidence": 0.1})]
    assert combined(lookup, unsure_model, 2) == ("lookup_likelier", lookup + unsure_model)
    assert combined(lookup, unsure_model, 2, model_first=True) == (
        "model",
        unsure_model + lookup,
    )
    # Where the model has nothing, the lookup's answer still goes out.
    assert combined(lookup, [], 1, model_first=True) == ("fallback", lookup)


class Sized:
    def __init__(self, parameters: int | None) -> None:
        self.parameters = parameters


def test_auto_order_puts_a_model_first_by_its_size():
    assert model_goes_first("auto", Sized(MODEL_FIRST_PARAMETERS))
    assert not model_goes_first("auto", Sized(MODEL_FIRST_PARAMETERS - 1))
    assert not model_goes_first("auto", Sized(None))
    assert not model_goes_first("auto", object())  # a remote model: its size is not known
    assert model_goes_first("model", object()) and not model_goes_first("chance", Sized(10**12))
    # The built-in model is tiny: it stays behind the lookup's sure copies.
    backend = onnx_hybrid()
    try:
        assert backend.settings.order == "auto" and not backend.model_first
        assert backend.model is not None
        assert 0 < backend.model.parameters < MODEL_FIRST_PARAMETERS  # type: ignore[attr-defined]
    finally:
        asyncio.run(backend.aclose())


def test_the_weights_of_the_published_qwen_configs():
    qwen = {"model_type": "qwen2", "vocab_size": 151_936, "num_key_value_heads": 2}
    small = {**qwen, "hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14}
    small["intermediate_size"] = 4864
    large = {**qwen, "hidden_size": 1536, "num_hidden_layers": 28, "num_attention_heads": 12}
    large["intermediate_size"] = 8960
    # Qwen2.5-0.5B and -1.5B as published (tied output layer), less biases and norms.
    assert parameter_count(small) == pytest.approx(494e6, rel=0.01)
    assert parameter_count(large) == pytest.approx(1.54e9, rel=0.01)
    # The Instruct GGUFs' untied output layer adds a second vocabulary-by-hidden table.
    untied = parameter_count({**small, "tie_word_embeddings": False})
    assert untied == parameter_count(small) + 151_936 * 896  # type: ignore[operator]
    assert parameter_count({"model_type": "qwen2"}) is None


async def test_with_the_model_first_a_sure_lookup_still_asks_it():
    async with FakeModelServer(answer_text) as server:
        model = HttpBackend(HttpSettings(url=server.base, stream=False))
        backend = HybridBackend(LookupBackend(), model, HybridSettings("http", 0.0, "model"))
        try:
            asked = GenerationLimits(Scope.LINE, 400, 1, 2, time.monotonic() + 5)
            found = await backend.generate(prompt(SURE), asked)
        finally:
            await backend.aclose()
    # lookupFirst 0 would send any lookup answer out unasked; with the model first it is
    # asked, and leads.
    assert len(server.requests) == 1
    assert [(c.text, c.origin) for c in found] == [
        (MODEL_TEXT, "http:openai"),
        (COPIED, "lookup:prefix"),
    ]
    assert backend.counters["lookup_first"] == 0 and backend.counters["model"] == 1
    assert "first" in backend.description


@pytest.mark.parametrize(
    ("settings", "prefix", "early_expected"),
    [
        (HybridSettings("http", 1.0, "chance", "lookup"), SURE, True),
        (HybridSettings("http", 1.0, "chance", "nothing"), SURE, False),  # waits for the model
        (HybridSettings("http", 1.0, "model", "lookup"), SURE, False),  # the model leads
        (HybridSettings("http", 0.0, "chance", "lookup"), SURE, False),  # sure: no model asked
        (HybridSettings("http", 1.0, "chance", "lookup"), UNSURE, False),  # no lookup answer
    ],
)
async def test_the_lookup_answer_goes_out_early_only_while_the_model_writes_behind_it(
    settings: HybridSettings, prefix: str, early_expected: bool
):
    async with FakeModelServer(answer_text) as server:
        model = HttpBackend(HttpSettings(url=server.base, stream=False))
        backend = HybridBackend(LookupBackend(), model, settings)
        given: list[list[Candidate]] = []
        try:
            asked = GenerationLimits(Scope.LINE, 400, 1, 2, time.monotonic() + 5)
            found = await backend.generate_in_turn(prompt(prefix), asked, given.append)
        finally:
            await backend.aclose()
    assert backend.answers_early == (
        settings.while_waiting == "lookup" and settings.order != "model"
    )
    if early_expected:
        assert [[c.text for c in early] for early in given] == [[COPIED]]
        # The final answer still comes, the model's first (the lookup has the lower chance).
        assert [c.text for c in found] == [MODEL_TEXT, COPIED]
    else:
        assert given == []
    assert len(server.requests) == (0 if settings.lookup_first == 0.0 else 1)
