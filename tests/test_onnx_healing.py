"""Token healing (backends/onnx/healing.py): which text is backed off, where the prefix ends
in each FIM layout, the tokens allowed while the answer must begin with the removed text, and
the decoder and backend that use them, on the tiny fixture's byte-level BPE vocabulary (Qwen's
pre-tokenizer) and tiny decoders made at test time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_decoders import qwen2_config, write_qwen2_folder

from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx import healing as healing_module
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.decode import Limits, decode, prefill
from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.backends.onnx.healing import (
    MAX_HEALED_CHARS,
    Forced,
    Healing,
    Vocabulary,
    heal,
    prefix_end,
)
from ghostcomplete.backends.onnx.prompt import fit_prompt
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import IncrementalDecoder, Tokenizer, load_tokenizer
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

pytestmark = pytest.mark.timeout(60)

TINY = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama"
CODE = (
    "class Product:\n    def __init__(self, name, value):\n        self.name = name\n"
    "        self.value = value\n\nclass Supplier:\n    def products(self):\n"
    "        return self.products\n\n"
)


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return load_tokenizer(TINY)


@pytest.fixture(scope="module")
def vocabulary(tokenizer: Tokenizer) -> Vocabulary:
    return Vocabulary(tokenizer, 512)


def prompt_for(prefix: str, suffix: str = "\n", family: str = "qwen") -> CompletionPrompt:
    context = PackedContext(prefix=prefix, suffix=suffix, snippets=(), tokens=0)
    text = render_fim(context, family, "python", "demo.py")
    return CompletionPrompt("python", "demo.py", context, text, TEMPLATES[family].stop)


def healed(
    prefix: str, tokenizer: Tokenizer, family: str = "qwen", suffix: str = "\n"
) -> tuple[list[int], Healing | None]:
    ids = fit_prompt(prompt_for(prefix, suffix, family), family, tokenizer, 400)
    return ids, heal(ids, family, prefix, tokenizer)


def brute_force_allowed(tokenizer: Tokenizer, pending: bytes, size: int = 512) -> set[int]:
    """The definition, token by token: begins with ``pending``, or is a non-empty proper
    prefix of it after which some token begins with the rest."""
    pieces = {t: tokenizer.token_bytes(t) for t in range(size)}
    starts = {t for t, b in pieces.items() if b and b.startswith(pending)}
    for t, b in pieces.items():
        if b and len(b) < len(pending) and pending.startswith(b):
            rest = pending[len(b) :]
            if any(other.startswith(rest) for other in pieces.values() if other):
                starts.add(t)
    return starts


# --- which text is backed off ---------------------------------------------------------------
def test_a_prefix_ending_in_a_space_backs_off_the_space(tokenizer: Tokenizer) -> None:
    ids, healing = healed("item = new ", tokenizer)
    assert healing is not None and healing.removed == b" " and healing.text == " "
    end = ids.index(tokenizer.special["<|fim_suffix|>"])
    # Qwen's layout: the space leaves the end of the prefix, before <|fim_suffix|>; the
    # answer (after <|fim_middle|>) must begin with it.
    assert healing.tokens == ids[: end - 1] + ids[end:]
    assert healing.tokens[-1] == tokenizer.special["<|fim_middle|>"]


def test_a_prefix_ending_in_a_partial_identifier_backs_off_its_last_token(
    tokenizer: Tokenizer,
) -> None:
    for prefix in ("x = self.produ", "p = Suppl", "total = value"):
        ids, healing = healed(prefix, tokenizer)
        assert healing is not None
        last = tokenizer.encode(prefix)[-1]
        assert healing.removed == tokenizer.token_bytes(last)
        assert prefix.endswith(healing.text) and healing.text.strip()
        assert len(healing.tokens) == len(ids) - 1


@pytest.mark.parametrize("prefix", ["x = 1\n", "def f():\n", "x = 1\r\n", "x = 'caf\u00e9"])
def test_no_healing_after_a_line_break_or_inside_a_character(
    tokenizer: Tokenizer, prefix: str
) -> None:
    """A line break ends the line the model writes on; a character split across tokens (é
    as two byte tokens here) has part of it in the token before."""
    assert healed(prefix, tokenizer)[1] is None


def test_no_healing_of_an_empty_prefix_or_a_long_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tokenizer with one long token (the fixture's, where a NUL stands for a long word)."""
    tokenizer = load_tokenizer(TINY)
    assert healed("", tokenizer)[1] is None  # the token before <|fim_suffix|> is a marker
    long = "x" * (MAX_HEALED_CHARS + 1)

    class OneLongToken:
        def __init__(self) -> None:
            self.special = dict(tokenizer.special)

        def encode(self, text: str) -> list[int]:
            return tokenizer.encode(text.replace(long, "\x00"))

        def token_bytes(self, token: int) -> bytes:
            data = tokenizer.token_bytes(token)
            return long.encode() if data == b"\x00" else data

    ids = fit_prompt(prompt_for("a = " + long), "qwen", OneLongToken(), 400)
    assert heal(ids, "qwen", "a = " + long, OneLongToken()) is None
    monkeypatch.setattr(healing_module, "MAX_HEALED_CHARS", len(long))
    found = heal(ids, "qwen", "a = " + long, OneLongToken())
    assert found is not None and found.text == long


# --- where the prefix ends in each layout -------------------------------------------------------
def test_the_prefix_ends_before_the_suffix_marker_or_at_the_prompt_end(
    tokenizer: Tokenizer,
) -> None:
    special = tokenizer.special
    psm = fit_prompt(prompt_for("x = ", "y\n"), "qwen", tokenizer, 400)
    assert prefix_end(psm, "qwen", special) == psm.index(special["<|fim_suffix|>"])
    # Suffix first (Codestral) and models with no FIM format: the prompt ends with the prefix.
    spm = tokenizer.encode(prompt_for("x = ", "y\n", "codestral").text)
    assert prefix_end(spm, "codestral", special) == len(spm)
    plain = tokenizer.encode("x = ")
    assert prefix_end(plain, None, special) == len(plain)
    left = heal(plain, None, "x = ", tokenizer)
    assert left is not None and left.tokens == plain[:-1] and left.removed == b" "
    # CodeLlama's markers carry spaces, and this tokenizer has no such special tokens.
    llama = tokenizer.encode(prompt_for("x = ", "y\n", "codellama").text)
    assert prefix_end(llama, "codellama", special) is None
    # The suffix marker also in the file's text: which one ends the prefix is not sure.
    twice = fit_prompt(prompt_for("x = ", "s = '<|fim_suffix|>'\n"), "qwen", tokenizer, 400)
    assert prefix_end(twice, "qwen", special) is None
    assert healed("x = ", tokenizer, suffix="s = '<|fim_suffix|>'\n")[1] is None


# --- the allowed tokens ------------------------------------------------------------------------
@pytest.mark.parametrize("pending", [b" ", b".produ", b"    ", b"Suppl", b"zq", b"\xff", b"):"])
def test_allowed_tokens_are_those_that_begin_with_it_or_lead_into_it(
    tokenizer: Tokenizer, vocabulary: Vocabulary, pending: bytes
) -> None:
    allowed = vocabulary.allowed(pending)
    assert len(allowed) == len(set(allowed.tolist()))
    assert set(allowed.tolist()) == brute_force_allowed(tokenizer, pending)
    assert set(allowed.tolist())  # never empty: the constraint cannot run dry


def test_the_space_range_and_its_mask(tokenizer: Tokenizer, vocabulary: Vocabulary) -> None:
    allowed = set(vocabulary.allowed(b" ").tolist())
    assert tokenizer.encode(" Supplier")[0] in allowed and tokenizer.encode(" self")[0] in allowed
    assert tokenizer.encode("self")[0] not in allowed
    assert not allowed & set(tokenizer.special.values())
    logits = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    masked = vocabulary.masked(logits, b" ")
    kept = np.isfinite(masked)
    assert set(np.flatnonzero(kept).tolist()) == allowed
    assert np.array_equal(masked[kept], logits[kept])


def test_the_decoder_leaves_out_the_removed_bytes(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode(" Supplier.products")
    plain, skipping = IncrementalDecoder(tokenizer), IncrementalDecoder(tokenizer, skip=3)
    for token in ids:
        plain.push(token)
        skipping.push(token)
    assert plain.text == " Supplier.products" and skipping.text == "pplier.products"


# --- decoding under the constraint -------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = qwen2_config(vocab_size=512, max_positions=512)
    return write_qwen2_folder(tmp_path_factory.mktemp("healing"), config, "fp32", seed=11)


def free(count: int) -> Limits:
    return Limits(StopRule(Scope.BLOCK, "", 10_000, 100_000), set(), count)


def constrained_greedy(
    model: OnnxModel, tokenizer: Tokenizer, ids: list[int], removed: bytes, count: int
) -> list[int]:
    """Greedy decoding with no cache, no drafts: each step re-reads the whole sequence and
    takes the best token of the brute-force allowed set while the constraint lasts."""
    tokens, pending = list(ids), removed
    for _ in range(count):
        logits, _ = model.forward(tokens, model._empty_growing())
        row = logits[-1]
        if pending:
            allowed = sorted(brute_force_allowed(tokenizer, pending))
            token = allowed[int(np.argmax(row[allowed]))]
            data = tokenizer.token_bytes(token)
            pending = b"" if len(data) >= len(pending) else pending[len(data) :]
        else:
            token = int(np.argmax(row))
        tokens.append(token)
    return tokens[len(ids) :]


def test_healed_decoding_is_constrained_greedy_with_drafts_and_shared_buffers(
    qwen2: Path,
) -> None:
    """Drafting, the shared KV buffers and the mask change nothing but speed: the tokens are
    those of greedy decoding under the same constraint, and the text leaves out the removed
    bytes. b"zq": no token begins with it, so "z" comes first and the next step is still
    constrained, to "q..."."""
    model = OnnxModel(qwen2, "cpu", 1)
    assert model.shares_buffers
    tokenizer = load_tokenizer(qwen2.parent)
    vocabulary = Vocabulary(tokenizer, model.vocab_size)
    ids = tokenizer.encode(CODE)
    accepted = 0
    for removed in (b" ", b"    ", b".produ", b"zq"):
        forced = Forced(removed, vocabulary)
        first = constrained_greedy(model, tokenizer, ids, removed, 16)
        # The model's own answer earlier in the prompt: drafts that verification accepts.
        for prompt in (ids, [*ids, *first, *ids]):
            expected = (
                first
                if prompt is ids
                else constrained_greedy(model, tokenizer, prompt, removed, 16)
            )
            start, _ = prefill(model, prompt)
            for drafts in (0, 8):
                got = decode(model, tokenizer, start, free(16), draft_tokens=drafts, forced=forced)
                assert got.tokens == expected
                whole = b"".join(tokenizer.token_bytes(t) for t in got.tokens)
                assert whole.startswith(removed)
                # (an incomplete UTF-8 character at the end is held back)
                rest = whole[len(removed) :].decode("utf-8", "replace")
                assert rest.startswith(got.text) and len(rest) - len(got.text) <= 3
                assert all(0 <= end <= len(got.text) for end in got.ends)
                accepted += got.accepted
        if removed == b"zq":
            assert tokenizer.token_bytes(first[0]) == b"z"
            assert tokenizer.token_bytes(first[1]).startswith(b"q")
    assert accepted > 0  # drafting resumes once the constraint is met


async def test_the_backend_shows_the_answer_without_the_prefix_tail(qwen2: Path) -> None:
    """The greedy candidate is the constrained answer minus the removed text, so prefix +
    shown text is what the model wrote after the healed prompt; with healing off the prompt
    keeps its last token. Reusing the cache across keystrokes and streaming agree."""
    limits = GenerationLimits(scope=Scope.LINE, max_lines=1, max_chars=200, candidates=1)
    base = {"path": str(qwen2.parent), "threads": 1, "max_new_tokens": 12, "cut": "none"}
    backend = OnnxBackend(OnnxSettings(**base))
    plain = OnnxBackend(OnnxSettings(**base, token_healing=False))
    fresh = OnnxBackend(OnnxSettings(**base, reuse_cache=False))
    model, tokenizer = backend.model, backend.tokenizer
    for prefix in (CODE + "item = new ", CODE + "x = self.produ", CODE + "s = Suppl"):
        ids, healing = healed(prefix, tokenizer)
        assert healing is not None
        expected_ids = constrained_greedy(model, tokenizer, healing.tokens, healing.removed, 12)
        ends = [i for i, t in enumerate(expected_ids) if t in backend._eos]
        expected_ids = expected_ids[: ends[0] if ends else None]
        raw = b"".join(tokenizer.token_bytes(t) for t in expected_ids).decode("utf-8", "replace")
        assert raw.startswith(healing.text)
        rule = StopRule(Scope.LINE, prefix.rsplit("\n", 1)[-1], 1, 200, TEMPLATES["qwen"].stop)
        expected = raw[len(healing.text) :]
        expected = expected[: rule.cut(expected)]
        expected = expected if expected.strip() else ""
        found = await backend.generate(prompt_for(prefix), limits)
        shown = found[0].text if found else ""
        assert shown == expected
        if found:
            assert found[0].details["healed_bytes"] == len(healing.removed)
            assert found[0].details["prompt_tokens"] == len(ids) - 1
        assert [c.text for c in await fresh.generate(prompt_for(prefix), limits)] == (
            [c.text for c in found]
        )
        streamed = "".join([piece async for piece in backend.stream(prompt_for(prefix), limits)])
        assert streamed == shown
        unhealed = await plain.generate(prompt_for(prefix), limits)
        if unhealed:
            assert unhealed[0].details["healed_bytes"] == 0
            assert unhealed[0].details["prompt_tokens"] == len(ids)
    for each in (backend, plain, fresh):
        await each.aclose()
