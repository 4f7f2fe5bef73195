"""The engine keeps its deadline by knowing what a pass costs: no decode step starts that
would end past it, and a prompt it cannot read in time is given up at once. A fake clock that
each forward pass of the tiny test model moves on makes the timing exact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ghostcomplete.backends.onnx.decode import Limits, decode, prefill, prefill_chunks
from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.backends.onnx.pace import CHUNK_S, Pace
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import load_tokenizer
from ghostcomplete.context.syntax import Scope

pytestmark = pytest.mark.timeout(60)

TINY = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama"
STEP_S = 0.05  # what the fake clock says a decode step takes
TOKEN_S = 0.004  # and a prompt token in a chunk


class Clocked:
    """The tiny model with a clock that its passes move on: a pass of n tokens takes
    STEP_S + n × TOKEN_S (one token: a decode step's cost and a little)."""

    def __init__(self, model: OnnxModel) -> None:
        self.model = model
        self.now = 100.0
        self.passes = 0

    def clock(self) -> float:
        return self.now

    def forward(self, tokens: list[int], past: Any, last: int | None = None) -> Any:
        self.passes += 1
        self.now += STEP_S + (len(tokens) - 1) * TOKEN_S
        return (
            self.model.forward(tokens, past)
            if last is None
            else self.model.forward(tokens, past, last=last)
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


@pytest.fixture(scope="module")
def tiny() -> tuple[OnnxModel, Any, list[int]]:
    expected = json.loads((TINY / "expected.json").read_text())
    model = OnnxModel(TINY / "model.onnx", "cpu", 1, slice_logits=True)
    return model, load_tokenizer(TINY), expected["greedy"][0]["ids"]


def limits(clocked: Clocked, deadline: float | None, pace: Pace | None) -> Limits:
    rule = StopRule(Scope.BLOCK, "", 10_000, 100_000)
    return Limits(rule, set(), 100, deadline, pace=pace, clock=clocked.clock)


def test_the_pace_learns_passes_and_predicts_what_fits() -> None:
    pace = Pace()
    assert pace.step_ends_by(10.0, 10.0)  # nothing known yet: nothing predicted
    pace.observe_step(0.04)
    assert pace.step_s == pytest.approx(0.04)
    pace.observe_step(0.14)
    assert 0.04 < pace.step_s < 0.14  # blended, the newest weighing less than the past
    pace.observe_prefill(8, 1.0)  # too short a chunk to say what a token costs
    assert pace.prefill_token_s == 0.0
    pace.observe_prefill(100, 0.5)
    assert pace.prefill_token_s == pytest.approx(0.005)
    assert pace.prompt_read_by(0.0, 100, 1.0) and not pace.prompt_read_by(0.0, 300, 1.0)
    assert pace.prompt_read_by(0.0, 10**9, None) and pace.step_ends_by(0.0, None)
    # Prefill passes of about CHUNK_S each: 0.005 s a token gives 24, raised to 32.
    assert Pace().chunk(128) == 128 and pace.chunk(128) == 32 and pace.chunk(16) == 16
    for _ in range(3):  # a faster machine, or a lighter load
        pace.observe_prefill(100, 0.01)
    assert pace.chunk(128) == int(CHUNK_S / pace.prefill_token_s) > 32


def test_decoding_stops_before_a_step_that_would_end_late(tiny) -> None:
    model, tokenizer, ids = tiny
    start, _ = prefill(model, ids)
    late = Clocked(model)
    deadline = late.now + 0.12
    # Checked only between passes, the deadline is overrun by the last step.
    plain = decode(late, tokenizer, start, limits(late, deadline, None))
    assert plain.reason == "deadline" and late.now > deadline
    kept = Clocked(model)
    paced = decode(kept, tokenizer, start, limits(kept, deadline, Pace()))
    assert paced.reason == "deadline" and kept.now <= deadline
    # What came in time is the start of the same greedy answer, one token more than passes.
    assert paced.tokens == plain.tokens[: len(paced.tokens)]
    assert len(paced.tokens) == kept.passes + 1 and kept.passes == 2
    # With time enough, the pace changes nothing.
    roomy = Clocked(model)
    assert (
        decode(roomy, tokenizer, start, limits(roomy, None, Pace())).tokens
        == decode(
            model, tokenizer, start, Limits(StopRule(Scope.BLOCK, "", 10_000, 100_000), set(), 100)
        ).tokens
    )


def test_a_prompt_that_cannot_be_read_in_time_is_given_up_at_once(tiny) -> None:
    model, _, ids = tiny
    prompt = (ids * 40)[:160]
    pace = Pace()
    learning = Clocked(model)
    done = prefill_chunks(learning, prompt, None, 40, pace=pace, clock=learning.clock)
    assert done.start is not None and pace.prefill_token_s > 0
    # The first pass takes 40 tokens (nothing known yet); then passes shrink to about
    # CHUNK_S of work, but not below 32 tokens, whose cost still says what a token costs.
    assert pace.chunk(40) == 32 and learning.passes == 5
    # 160 tokens take about 0.8 s here; with 0.5 s left nothing is fed.
    short = Clocked(model)
    given_up = prefill_chunks(
        short, prompt, None, 40, pace=pace, deadline=short.now + 0.5, clock=short.clock
    )
    assert given_up.start is None and given_up.reason == "deadline" and short.passes == 0
    # Once most of it is in the cache, the rest fits.
    cached = (done.covered[:140], done.past.truncated(140))
    rest = Clocked(model)
    deadline = rest.now + 0.5
    quick = prefill_chunks(rest, prompt, cached, 40, pace=pace, deadline=deadline, clock=rest.clock)
    assert quick.start is not None and quick.reused == 140 and rest.now <= deadline
