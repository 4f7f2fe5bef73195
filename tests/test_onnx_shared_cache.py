"""The engine on GroupQueryAttention graphs written by model/onnx_decoder.py at test time
(random weights, fp32 and int4): the shared KV buffers give the same greedy tokens as the
growing cache and as decoding without a cache; going back to an earlier position (a rejected
draft, a new keystroke) is exact and free; buffers grow when a context outgrows them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_decoders import qwen2_config, write_qwen2_folder

from ghostcomplete.backends.onnx import engine as onnx_engine
from ghostcomplete.backends.onnx.decode import Limits, decode, prefill
from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import load_tokenizer
from ghostcomplete.context.syntax import Scope

pytestmark = pytest.mark.timeout(60)

CONFIG = qwen2_config(vocab_size=512, max_positions=512)
CODE = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\n" * 3


def write_tiny_decoder(folder: Path, precision: str) -> Path:
    return write_qwen2_folder(folder, CONFIG, precision, seed=7)


@pytest.fixture(scope="module", params=["fp32", "int4"])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_decoder(tmp_path_factory.mktemp(request.param), request.param)


def free(max_new: int = 24) -> Limits:
    return Limits(StopRule(Scope.BLOCK, "", 10_000, 100_000), set(), max_new)


def no_cache_greedy(model: OnnxModel, ids: list[int], count: int) -> list[int]:
    tokens = list(ids)
    for _ in range(count):
        logits, _ = model.forward(tokens, model._empty_growing())
        tokens.append(int(np.argmax(logits[-1])))
    return tokens[len(ids) :]


def test_group_query_attention_graphs_share_their_buffers(written: Path) -> None:
    shared = OnnxModel(written, "cpu", 1)
    growing = OnnxModel(written, "cpu", 1, share_buffers=False)
    assert shared.shares_buffers and not growing.shares_buffers
    tokenizer = load_tokenizer(written.parent)
    ids = tokenizer.encode(CODE)[:40]
    start, _ = prefill(shared, ids)
    assert start.past.shared is not None and start.past.values == []
    tokens = decode(shared, tokenizer, start, free(20)).tokens
    assert len(set(tokens)) > 2  # a real sequence, not one token repeated
    assert tokens == decode(growing, tokenizer, prefill(growing, ids)[0], free(20)).tokens
    assert tokens == no_cache_greedy(growing, ids, 20)


def test_prompt_lookup_on_shared_buffers_is_output_identical(written: Path) -> None:
    """Verification writes the drafts into the buffers; a rejected tail is dropped by
    shortening the valid length, and the next pass writes over it."""
    model = OnnxModel(written, "cpu", 1)
    tokenizer = load_tokenizer(written.parent)
    ids = tokenizer.encode(CODE)
    start, _ = prefill(model, ids)
    plain = decode(model, tokenizer, start, free(40))
    echo = [*ids, *plain.tokens, *ids]
    drafts, accepted = 0, 0
    for prompt in (ids, echo):
        start, _ = prefill(model, prompt)
        plain = decode(model, tokenizer, start, free(40))
        drafted = decode(model, tokenizer, start, free(40), draft_tokens=8)
        assert drafted.tokens == plain.tokens
        # Each accepted draft saves a pass (but the last, when it ends the answer).
        assert drafted.forwards <= plain.forwards - drafted.accepted + 1
        drafts, accepted = drafts + drafted.drafted, accepted + drafted.accepted
    assert drafts > 0
    # A pass over a token and 5 drafts of which 2 are kept: the next pass writes over the
    # other 3 and sees what a pass over the kept tokens alone would have left.
    _, past = model.forward(ids[:20], model.empty_cache())
    _, verified = model.forward(ids[20:26], past)
    logits, _ = model.forward(ids[23:25], verified.truncated(23))
    whole, _ = model.forward(ids[:25], model._empty_growing())
    np.testing.assert_allclose(logits, whole[-2:], rtol=1e-4, atol=1e-4)


def test_reuse_after_a_rewind_equals_decoding_from_scratch(written: Path) -> None:
    model = OnnxModel(written, "cpu", 1)
    fresh_model = OnnxModel(written, "cpu", 1)
    tokenizer = load_tokenizer(written.parent)
    first = tokenizer.encode(CODE[:90])
    # The next keystroke: the same start, then other text than what was generated.
    second = tokenizer.encode(CODE[:70] + "mul(a, b):\n    return")
    ran = decode(model, tokenizer, prefill(model, first)[0], free(12))
    assert ran.past is not None and ran.past.usable == len(ran.fed)
    reused, kept = prefill(model, second, (ran.fed, ran.past))
    assert 0 < kept < len(first)
    fresh, _ = prefill(fresh_model, second)
    np.testing.assert_allclose(reused.logits, fresh.logits, rtol=1e-4, atol=1e-4)
    assert (
        decode(model, tokenizer, reused, free()).tokens
        == decode(fresh_model, tokenizer, fresh, free()).tokens
    )
    # The rewind wrote over the old sequence past ``kept``: its cache is valid up to there,
    # and a reuse of it takes no more than that.
    assert ran.past.usable == kept
    again, reused_count = prefill(model, first, (ran.fed, ran.past))
    assert reused_count == kept
    np.testing.assert_allclose(
        again.logits, prefill(fresh_model, first)[0].logits, rtol=1e-4, atol=1e-4
    )


def test_buffers_grow_when_the_context_outgrows_them(
    written: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_engine, "SHARED_START", 16)
    monkeypatch.setattr(onnx_engine, "GROW_ROOM", 4)
    monkeypatch.setattr(onnx_engine, "GROW_STEP", 8)
    model = OnnxModel(written, "cpu", 1)
    growing = OnnxModel(written, "cpu", 1, share_buffers=False)
    tokenizer = load_tokenizer(written.parent)
    ids = tokenizer.encode(CODE)[:30]
    # The prompt's room is made at once, before its chunks are fed: 30 + 4, in steps of 8.
    start, _ = prefill(model, ids)
    assert model._buffers is not None and model._buffers.capacity == 40
    # Decoding past it grows by what it needs, not by doubling: 20 tokens reach 50 (+ 4).
    tokens = decode(model, tokenizer, start, free(20)).tokens
    assert model._buffers.capacity == 56
    assert tokens == decode(growing, tokenizer, prefill(growing, ids)[0], free(20)).tokens
