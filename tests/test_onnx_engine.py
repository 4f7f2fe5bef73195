"""The ONNX engine on tiny GPT-2 and Llama decoders exported by optimum (tests/fixtures/onnx,
built by tests/fixtures/make_onnx_fixtures.py): same tokenizer ids as `tokenizers`, same greedy
tokens as `transformers`, KV-cache decoding equal to no-cache decoding, prompt-lookup and
cache reuse equal to plain greedy decoding."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.decode import Limits, Sampling, decode, prefill
from ghostcomplete.backends.onnx.engine import (
    LOGITS_KEPT,
    KvCache,
    OnnxModel,
    choose_providers,
    fim_family_of,
)
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import (
    HfTokenizer,
    IncrementalDecoder,
    TiktokenTokenizer,
    load_tokenizer,
)
from ghostcomplete.context.syntax import Scope

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
NAMES = ["tiny-gpt2", "tiny-llama"]
REPEATING = "for i in range(10):\n    print(i)\nfor j in range(10):\n    print(j)\n" * 3


@pytest.fixture(scope="module", params=NAMES)
def tiny(request: pytest.FixtureRequest) -> tuple[OnnxModel, TiktokenTokenizer, dict]:
    folder = FIXTURES / request.param
    tokenizer = load_tokenizer(folder)
    assert isinstance(tokenizer, TiktokenTokenizer)
    expected = json.loads((folder / "expected.json").read_text())
    # Sliced, as a real model's graph is (their vocabularies are far larger than 512).
    return OnnxModel(folder / "model.onnx", "cpu", 1, slice_logits=True), tokenizer, expected


def free(max_new: int = 24, scope: Scope = Scope.BLOCK) -> Limits:
    return Limits(StopRule(scope, "", 10_000, 100_000), set(), max_new)


def no_cache_greedy(model: OnnxModel, ids: list[int], count: int) -> list[int]:
    tokens = list(ids)
    for _ in range(count):
        logits, _ = model.forward(tokens, model.empty_cache())
        tokens.append(int(np.argmax(logits[-1])))
    return tokens[len(ids) :]


def test_tokenizer_json_becomes_tiktoken_with_the_same_ids(tiny) -> None:
    _, tokenizer, expected = tiny
    for case in expected["encode"]:
        assert tokenizer.encode(case["text"]) == case["ids"]
    decoder = IncrementalDecoder(tokenizer)
    for token in tokenizer.encode(expected["encode"][1]["text"]):
        decoder.push(token)
    assert decoder.text == expected["encode"][1]["text"]


def test_greedy_tokens_equal_transformers(tiny) -> None:
    model, tokenizer, expected = tiny
    for case in expected["greedy"]:
        assert tokenizer.encode(case["prompt"]) == case["ids"]
        start, _ = prefill(model, case["ids"])
        assert decode(model, tokenizer, start, free()).tokens == case["new"]


def test_kv_cache_decoding_equals_no_cache_decoding(tiny) -> None:
    model, tokenizer, expected = tiny
    ids = expected["greedy"][1]["ids"]
    start, _ = prefill(model, ids)
    assert decode(model, tokenizer, start, free(16)).tokens == no_cache_greedy(model, ids, 16)


def test_prompt_lookup_is_output_identical_to_greedy(tiny) -> None:
    model, tokenizer, _ = tiny
    ids = tokenizer.encode(REPEATING)
    start, _ = prefill(model, ids)
    plain = decode(model, tokenizer, start, free(48))
    # The model's own continuation earlier in the prompt: drafts that verification accepts.
    echo = [*ids, *plain.tokens, *ids]
    for prompt in (ids, echo):
        start, _ = prefill(model, prompt)
        plain = decode(model, tokenizer, start, free(48))
        drafted = decode(model, tokenizer, start, free(48), draft_tokens=8)
        assert drafted.tokens == plain.tokens and drafted.text == plain.text
        assert drafted.forwards == plain.forwards - drafted.accepted


class BigramModel:
    """A stand-in model whose next token depends on the last one only: its greedy output
    cycles, so drafts copied from earlier text are accepted, and sometimes rejected."""

    def __init__(self, vocab: int = 11) -> None:
        rng = np.random.default_rng(3)
        self.table = rng.normal(size=(vocab, vocab)).astype(np.float32)
        self.max_positions = 1 << 20
        self.calls: list[int] = []

    def empty_cache(self) -> KvCache:
        return KvCache([], 0)

    def reserve(self, past: KvCache, positions: int) -> None:
        """Its cache holds nothing, so there is no room to make."""

    def forward(
        self, ids: list[int], past: KvCache, last: int | None = None
    ) -> tuple[np.ndarray, KvCache]:
        self.calls.append(len(ids))
        return self.table[ids], KvCache([], past.length + len(ids))


class DigitTokenizer:
    def __init__(self) -> None:
        self.special: dict[str, int] = {}

    def encode(self, text: str) -> list[int]:
        return [int(ch) for ch in text]

    def token_bytes(self, token: int) -> bytes:
        return b"abcdefghijk"[token : token + 1]


def test_prompt_lookup_accepts_drafts_and_keeps_greedy_output() -> None:
    model, tokenizer = BigramModel(), DigitTokenizer()
    for prompt in ([1, 2, 3, 4, 5, 6, 1, 2], [7, 7, 7, 3], [0, 9, 8, 0, 9, 8, 0]):
        start, _ = prefill(model, prompt)  # type: ignore[arg-type]
        plain = decode(model, tokenizer, start, free(40))  # type: ignore[arg-type]
        drafted = decode(model, tokenizer, start, free(40), draft_tokens=8)  # type: ignore[arg-type]
        assert drafted.tokens == plain.tokens and len(plain.tokens) == 40
        assert drafted.accepted > 0 and drafted.forwards < plain.forwards / 2


def test_cache_reuse_across_prompts_sharing_a_prefix(tiny) -> None:
    model, tokenizer, _ = tiny
    first = tokenizer.encode("def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    ret")
    second = tokenizer.encode("def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a -")
    start, _ = prefill(model, first)
    ran = decode(model, tokenizer, start, free(8))
    assert ran.past is not None
    reused, kept = prefill(model, second, (ran.fed, ran.past))
    fresh, _ = prefill(model, second)
    assert kept > len(first) // 2
    np.testing.assert_allclose(reused.logits, fresh.logits, rtol=1e-4, atol=1e-4)
    assert (
        decode(model, tokenizer, reused, free()).tokens
        == decode(model, tokenizer, fresh, free()).tokens
    )
    # A cache covering more than the new prompt is cut back, never used past the prompt.
    again, kept = prefill(model, first[:5], (ran.fed, ran.past))
    assert kept == 4
    np.testing.assert_allclose(again.logits, prefill(model, first[:5])[0].logits, atol=1e-4)


def test_deadline_and_cancellation_end_decoding(tiny) -> None:
    model, tokenizer, expected = tiny
    start, _ = prefill(model, expected["greedy"][0]["ids"])
    late = free(100)
    late.deadline = time.monotonic() - 1
    assert decode(model, tokenizer, start, late).reason == "deadline"
    cancelled = Limits(StopRule(Scope.BLOCK, "", 99, 9999), set(), 100, None, threading.Event())
    cancelled.cancel.set()
    assert decode(model, tokenizer, start, cancelled).tokens == []


def test_max_tokens_and_eos_end_decoding(tiny) -> None:
    model, tokenizer, expected = tiny
    case = expected["greedy"][0]
    start, _ = prefill(model, case["ids"])
    assert len(decode(model, tokenizer, start, free(5)).tokens) == 5
    new = case["new"]
    at = next(i for i in range(1, len(new)) if new[i] not in new[:i])
    ended = decode(
        model, tokenizer, start, Limits(StopRule(Scope.BLOCK, "", 99, 9999), {new[at]}, 100)
    )
    assert ended.reason == "eos" and ended.tokens == new[:at]


def test_sampling_is_seeded_and_varies(tiny) -> None:
    model, tokenizer, expected = tiny
    start, _ = prefill(model, expected["greedy"][2]["ids"])
    runs = [
        decode(model, tokenizer, start, free(12), Sampling(1.0, 0.95, s)).tokens for s in (1, 1, 2)
    ]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_family_comes_from_the_fim_tokens_or_model_type(tiny) -> None:
    model, tokenizer, _ = tiny
    family = fim_family_of(model.config, tokenizer.special)
    assert family == ("starcoder" if model.config["model_type"] == "gpt2" else "qwen")
    assert fim_family_of({"model_type": "qwen2"}, {}) == "qwen"
    assert fim_family_of({"model_type": "gpt2"}, {}) is None


def test_cpu_is_chosen_without_a_cuda_driver_and_says_why() -> None:
    providers, why = choose_providers("cpu")
    assert providers == ["CPUExecutionProvider"] and "settings" in why
    providers, why = choose_providers("auto")
    assert providers[-1] == "CPUExecutionProvider" and why


def test_hf_tokenizers_fallback_gives_the_same_ids() -> None:
    pytest.importorskip("tokenizers")
    folder = FIXTURES / "tiny-llama"
    tokenizer = HfTokenizer(folder / "tokenizer.json")
    for case in json.loads((folder / "expected.json").read_text())["encode"]:
        assert tokenizer.encode(case["text"]) == case["ids"]


def test_broken_model_file_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(BackendError, match="cannot load"):
        OnnxModel(tmp_path / "model.onnx", "cpu")
    with pytest.raises(BackendError, match="no tokenizer"):
        load_tokenizer(tmp_path)


def test_measure_times_a_request_of_token_ids_without_a_tokenizer(tmp_path: Path) -> None:
    """`model.measure --request P:N`: a prompt of P random ids plus N greedy tokens, on a
    folder with only the model and its config (what `model.random_export` writes)."""
    import shutil

    from ghostcomplete.model import measure

    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for name in ("model.onnx", "config.json", "generation_config.json"):
        shutil.copy(FIXTURES / "tiny-llama" / name, folder / name)
    out = tmp_path / "timing.json"
    measure.main(["--path", str(folder), "--request", "40:4", "--repeat", "2", "--json", str(out)])
    timing = json.loads(out.read_text())
    assert timing["request"] == "40+4" and timing["request_runs"] == 2
    assert 0 < timing["request_prefill_p50_ms"] <= timing["request_p50_ms"]
    assert timing["request_p50_ms"] <= timing["request_p95_ms"]
    assert timing["provider"] == "CPUExecutionProvider"


def test_the_sliced_graph_gives_the_exported_graphs_last_logits(tiny) -> None:
    """The session runs a copy of the graph that computes logits for the last positions
    only; they are the exported graph's own, run as the file is (onnxruntime directly)."""
    import onnxruntime as ort

    model, tokenizer, _ = tiny
    assert LOGITS_KEPT in model.input_names
    ids = tokenizer.encode(REPEATING)
    logits, past = model.forward(ids, model.empty_cache(), last=1)
    assert logits.shape[0] == 1
    every, _ = model.forward(ids, model.empty_cache())
    assert every.shape[0] == len(ids)
    assert np.allclose(every[-1], logits[-1], atol=1e-5)
    plain = ort.InferenceSession(str(model.model_file), providers=["CPUExecutionProvider"])
    names = {i.name for i in plain.get_inputs()}
    feed = {"input_ids": np.asarray([ids], np.int64)}
    feed["attention_mask"] = np.ones((1, len(ids)), np.int64)
    if "position_ids" in names:
        feed["position_ids"] = np.arange(len(ids), dtype=np.int64)[None, :]
    empty = model.empty_cache()
    feed.update(zip(model.past_names, empty.arrays(), strict=True))
    exported = plain.run(["logits"], feed)[0][0]
    assert exported.shape[0] == len(ids)
    assert np.allclose(exported, every, atol=1e-4)
    assert np.allclose(exported[-1], logits[-1], atol=1e-4)
    # The cache is the same either way: the next token's logits agree.
    after, _ = model.forward([int(np.argmax(logits[-1]))], past)
    assert after.shape[0] == 1


def test_graphs_that_do_not_end_in_a_matmul_are_loaded_as_they_are(tmp_path: Path) -> None:
    """The built-in int8 model's logits come out of a dequantizing Mul: left as exported. A
    file that is not a graph is not sliced either (the session's own load reports it)."""
    from ghostcomplete.backends.onnx.engine import last_logits_graph

    shipped = Path(__file__).parent.parent / "backends" / "onnx" / "builtin"
    assert last_logits_graph(shipped / "model_quantized.onnx") is None
    assert last_logits_graph(shipped / "model.onnx") is not None
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x00not a graph")
    assert last_logits_graph(broken) is None


def test_small_vocabularies_load_as_exported() -> None:
    """4,096 tokens (the built-in model): slicing would save little and cost onnx's import."""
    shipped = Path(__file__).parent.parent / "backends" / "onnx" / "builtin" / "model.onnx"
    assert LOGITS_KEPT not in OnnxModel(shipped, "cpu", 1).input_names
    assert LOGITS_KEPT in OnnxModel(shipped, "cpu", 1, slice_logits=True).input_names
    tiny = FIXTURES / "tiny-llama" / "model.onnx"
    assert LOGITS_KEPT not in OnnxModel(tiny, "cpu", 1, slice_logits=False).input_names


def test_a_slice_that_does_not_keep_positions_falls_back_to_the_exported_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A graph whose hidden states are not (batch, position, hidden) would be sliced wrong:
    the load checks the sliced logits against the whole ones and runs the file as exported."""
    import onnx

    from ghostcomplete.backends.onnx import engine as onnx_engine

    tiny = FIXTURES / "tiny-llama" / "model.onnx"
    wrong = onnx.load_from_string(onnx_engine.last_logits_graph(tiny))
    for tensor in wrong.graph.initializer:
        if tensor.name == "ghostcomplete_axis":
            tensor.CopyFrom(onnx.helper.make_tensor(tensor.name, onnx.TensorProto.INT64, [1], [2]))
    monkeypatch.setattr(onnx_engine, "last_logits_graph", lambda _: wrong.SerializeToString())
    model = OnnxModel(tiny, "cpu", 1, slice_logits=True)
    assert LOGITS_KEPT not in model.input_names
    logits, _ = model.forward([1, 2, 3], model.empty_cache(), last=1)
    assert logits.shape[0] == 3  # the exported graph: every position


def test_the_cache_stays_in_onnxruntime_and_a_rejected_tail_is_cut(tiny) -> None:
    """I/O binding: the cache is onnxruntime's own values, never numpy; a cache truncated
    after a longer pass (a draft's rejected tail) gives the logits of the shorter sequence."""
    import onnxruntime as ort

    model, tokenizer, _ = tiny
    ids = tokenizer.encode(REPEATING)[:30]
    _, past = model.forward(ids[:20], model.empty_cache(), last=1)
    assert all(isinstance(v, ort.OrtValue) for v in past.values)
    _, longer = model.forward(ids[20:26], past)
    assert longer.values[0].shape()[2] == 26
    cut = longer.truncated(22)
    assert cut.length == 22 and cut.values[0].shape()[2] == 26  # cut when next fed
    after_cut, fed = model.forward(ids[22:25], cut)
    whole, _ = model.forward(ids[:25], model.empty_cache())
    np.testing.assert_allclose(after_cut, whole[-3:], rtol=1e-4, atol=1e-4)
    assert fed.length == 25 and fed.values[0].shape()[2] == 25
    np.testing.assert_array_equal(cut.arrays()[0], longer.arrays()[0][:, :, :22])
