"""Token-by-token decoding over an ``OnnxModel``: greedy (optionally with prompt-lookup
speculation) or sampled, with stop rules, a token budget, a deadline and cancellation checked
between forward passes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ghostcomplete.backends.onnx.engine import KvCache, OnnxModel
from ghostcomplete.backends.onnx.healing import Forced, narrowed
from ghostcomplete.backends.onnx.pace import Pace
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import IncrementalDecoder, Tokenizer


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    seed: int


@dataclass
class Start:
    """The state after the prompt: its tokens, the logits of the next token, the cache."""

    tokens: list[int]
    logits: np.ndarray
    past: KvCache


@dataclass
class Decoded:
    text: str
    tokens: list[int]
    # Why it ended: "stop", "eos", "max_tokens", "deadline", "cancelled", "context".
    reason: str
    forwards: int = 0
    drafted: int = 0
    accepted: int = 0
    # Every token the cache now covers, and that cache (for reuse by the next request).
    fed: list[int] = field(default_factory=list)
    past: KvCache | None = None
    # Per token of ``tokens``: its probability under the model (the softmax of the logits it
    # was chosen from) and where it ends in ``text`` (clipped where a stop rule cut the text).
    chances: list[float] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)


class NgramIndex:
    """Where each 2- and 3-gram of a token sequence last occurred, to draft continuations."""

    SIZES = (3, 2)

    def __init__(self, tokens: list[int]) -> None:
        self.tokens: list[int] = []
        self.last: dict[tuple[int, ...], int] = {}
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        end = len(self.tokens)
        for n in self.SIZES:
            if end >= n:
                self.last[tuple(self.tokens[end - n :])] = end
        self.tokens.append(token)

    def draft(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens that followed the latest earlier occurrence of the tail."""
        if limit <= 0:
            return []
        for n in self.SIZES:
            if len(self.tokens) < n:
                continue
            end = self.last.get(tuple(self.tokens[-n:]))
            if end is not None:
                return self.tokens[end : end + limit]
        return []


def chance_of(logits: np.ndarray, token: int) -> float:
    """The probability of ``token`` under the softmax of one row of logits: only the chosen
    token's log-probability is needed, so one log-sum-exp of the row."""
    row = logits.astype(np.float64, copy=False)
    top = float(row.max())
    total = float(np.log(np.exp(row - top).sum())) + top
    return float(np.exp(float(row[token]) - total))


def sample(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    if sampling.temperature <= 0:
        return int(np.argmax(logits))
    scaled = (logits - logits.max()) / sampling.temperature
    probs = np.exp(scaled)
    probs /= probs.sum()
    order = np.argsort(-probs)
    cumulative = np.cumsum(probs[order])
    keep = order[: int(np.searchsorted(cumulative, sampling.top_p)) + 1]
    kept = probs[keep] / probs[keep].sum()
    return int(keep[rng.choice(len(keep), p=kept)])


@dataclass
class Limits:
    stop: StopRule
    eos: set[int]
    max_new_tokens: int
    deadline: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    max_positions: int = 1 << 30
    # Called before each forward pass (a long answer lets waiting short jobs run there).
    between: Callable[[], None] | None = None
    # With a pace, no decode step starts that is expected to end past the deadline: the
    # answer so far then comes in time instead of one step late. Observed as it goes.
    pace: Pace | None = None
    clock: Callable[[], float] = time.monotonic


def decode(
    model: OnnxModel,
    tokenizer: Tokenizer,
    start: Start,
    limits: Limits,
    sampling: Sampling | None = None,
    draft_tokens: int = 0,
    progress: Callable[[str], None] | None = None,
    forced: Forced | None = None,
) -> Decoded:
    """Generate from ``start``. Greedy when ``sampling`` is None; with ``draft_tokens`` > 0,
    greedy drafts that many tokens from earlier n-grams and verifies them in one pass, which
    changes the speed and not the tokens. ``progress`` is called with the text so far that no
    stop rule can cut any more, each time it grows (from this thread). With ``forced``, the
    first tokens are chosen among those that keep the answer beginning with its bytes (their
    chances renormalized over those), no draft is verified before that is done, and the text
    leaves those bytes out."""
    rng = np.random.default_rng(sampling.seed if sampling else 0)
    pending = forced.removed if forced is not None else b""
    text = IncrementalDecoder(tokenizer, len(pending))
    result = Decoded("", [], "max_tokens", fed=list(start.tokens), past=start.past)
    index = NgramIndex(start.tokens) if draft_tokens > 0 and sampling is None else None
    logits, past = start.logits, start.past
    shown = 0

    def emit(token: int, row: np.ndarray) -> bool:
        """Add a token (chosen from the logits ``row``) to the answer; True when generation
        must end here."""
        if token in limits.eos:
            result.reason = "eos"
            return True
        result.tokens.append(token)
        result.chances.append(chance_of(row, token))
        text.push(token)
        cut = limits.stop.cut(text.text)
        if cut is not None:
            result.text = text.text[:cut]
            result.ends.append(min(len(text.text), cut))
            result.reason = "stop"
            return True
        result.text = text.text
        result.ends.append(len(text.text))
        if len(result.tokens) >= limits.max_new_tokens:
            result.reason = "max_tokens"
            return True
        if progress is not None:
            nonlocal shown
            settled = limits.stop.settled(result.text)
            if settled > shown:
                shown = settled
                progress(result.text[:settled])
        return False

    while True:
        if limits.between is not None:
            limits.between()
        if limits.cancel.is_set():
            result.reason = "cancelled"
            break
        if limits.deadline is not None and limits.clock() > limits.deadline:
            result.reason = "deadline"
            break
        row = logits
        if pending:
            assert forced is not None
            row = forced.vocabulary.masked(logits, pending)
        token = int(np.argmax(row)) if sampling is None else sample(row, sampling, rng)
        if pending:
            pending = narrowed(pending, tokenizer.token_bytes(token))
        if emit(token, row):
            break
        room = limits.max_positions - past.length - 1
        if room <= 0:
            result.reason = "context"
            break
        draft: list[int] = []
        if index is not None:
            index.append(token)
            left = limits.max_new_tokens - len(result.tokens)
            # A draft is verified by the unconstrained argmax: none while the next token is
            # still constrained.
            if not pending:
                draft = index.draft(min(draft_tokens, left, room - 1))
        pace = limits.pace
        if pace is not None and not pace.step_ends_by(limits.clock(), limits.deadline):
            result.reason = "deadline"  # the token in hand is kept; the next would be late
            break
        began = limits.clock()
        out, present = model.forward([token, *draft], past)
        if pace is not None:
            pace.observe_step(limits.clock() - began)
        result.forwards += 1
        accepted = 0
        for position, guess in enumerate(draft):
            if int(np.argmax(out[position])) != guess:
                break
            accepted += 1
        result.drafted += len(draft)
        result.accepted += accepted
        past = present.truncated(past.length + 1 + accepted)
        result.fed += [token, *draft[:accepted]]
        result.past = past
        logits = out[accepted]
        stopped = False
        for position, guess in enumerate(draft[:accepted]):
            assert index is not None
            index.append(guess)
            if emit(guess, out[position]):
                stopped = True
                break
        if stopped:
            break
    return result


def common_prefix(a: list[int], b: list[int]) -> int:
    limit = min(len(a), len(b))
    if limit == 0:
        return 0
    left, right = np.asarray(a[:limit]), np.asarray(b[:limit])
    differs = np.flatnonzero(left != right)
    return int(differs[0]) if differs.size else limit


@dataclass
class Prefilled:
    """How far a prefill got: the state after the whole prompt, or None where it was
    abandoned (``reason`` says why); either way the cache of every token it covered."""

    start: Start | None
    reused: int
    covered: list[int]
    past: KvCache
    reason: str = ""


def prefill_chunks(
    model: OnnxModel,
    tokens: list[int],
    cached: tuple[list[int], KvCache] | None = None,
    chunk: int = 0,
    stop: Callable[[], str | None] | None = None,
    pace: Pace | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Prefilled:
    """The state after ``tokens``, reusing ``cached`` (tokens, cache) for the part they
    share; the rest is fed ``chunk`` tokens at a time (all at once when 0), and before each
    chunk ``stop`` may give a reason to abandon it ("deadline", "cancelled"). With a ``pace``
    (observed chunk by chunk) and a ``deadline``, a prompt whose rest is not expected to be
    read by then, with one decode step after it, is abandoned at once ("deadline"), and
    chunks shrink to about ``CHUNK_S`` of work each."""
    past = model.empty_cache()
    keep = 0
    if cached is not None:
        keep = min(common_prefix(cached[0], tokens), len(tokens) - 1, cached[1].usable)
        if keep > 0:
            past = cached[1].truncated(keep)
        else:
            keep = 0
    model.reserve(past, len(tokens))
    size = chunk if chunk > 0 else len(tokens)
    at = keep
    logits: np.ndarray | None = None
    while at < len(tokens):
        reason = stop() if stop is not None else None
        left = len(tokens) - at
        if reason is None and pace and not pace.prompt_read_by(clock(), left, deadline):
            reason = "deadline"
        if reason is not None:
            return Prefilled(None, keep, list(tokens[:at]), past, reason)
        piece = tokens[at : at + (pace.chunk(size) if pace is not None else size)]
        began = clock()
        logits, past = model.forward(piece, past, last=1)
        if pace is not None:
            pace.observe_prefill(len(piece), clock() - began)
        at += len(piece)
    assert logits is not None  # keep < len(tokens): at least one piece was fed
    return Prefilled(Start(list(tokens), logits[-1], past), keep, list(tokens), past)


def prefill(
    model: OnnxModel, tokens: list[int], cached: tuple[list[int], KvCache] | None = None
) -> tuple[Start, int]:
    """The state after ``tokens`` in one pass, reusing ``cached`` (tokens, cache) for the
    part they share; also how many tokens were reused."""
    done = prefill_chunks(model, tokens, cached)
    assert done.start is not None
    return done.start, done.reused
