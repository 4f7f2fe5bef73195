"""The n-gram fallback: the rest of the line by majority vote of shorter contexts."""

from __future__ import annotations

from collections.abc import Callable

from ghostcomplete.backends import CompletionPrompt, GenerationLimits, LookupBackend
from ghostcomplete.backends.config import LookupSettings
from ghostcomplete.backends.lookup.confidence import ContinuationCounts, Cut
from ghostcomplete.backends.lookup.ngram import ngram_continuation, written_first
from ghostcomplete.ranker.budget import PackedContext

CALLS = (
    "a = session.get(url, timeout=5)\n"
    "b = session.get(url, timeout=5)\n"
    "c = session.get(other, timeout=9)\n"
)


def counts(before: str, *files: str) -> ContinuationCounts:
    return ContinuationCounts([before, "", *files])


def test_the_majority_goes_on_and_the_chance_is_the_product_of_shares() -> None:
    before = "z = session.get("
    cut = ngram_continuation(counts(before, CALLS), before)
    assert cut is not None
    assert cut.text == "url, timeout=5)"
    assert abs(cut.confidence - 2 / 3) < 1e-9  # "url" at 2 of 3 places; then all agree


def test_it_writes_one_line_at_most() -> None:
    before = "z = session.get(url, timeout=5)"
    text = "x = session.get(url, timeout=5)\nreturn x\ny = session.get(url, timeout=5)\nreturn y\n"
    assert ngram_continuation(counts(before, text), before) is None  # next is a line break


def test_written_first_speaks_where_the_copy_is_absent_or_weak_and_it_is_sure() -> None:
    asked: list[float | None] = []

    def write(chance: float) -> Callable[[], Cut]:
        return lambda: asked.append(chance) or Cut("url, timeout=5)", chance)

    # No copy shown: the n-gram at >= 0.5.
    assert written_first(None, write(0.5)) == Cut("url, timeout=5)", 0.5)
    assert written_first(None, write(0.49)) is None
    # A weak copy (< 0.3) gives way to an n-gram at >= 0.7 only.
    assert written_first(0.29, write(0.7)) == Cut("url, timeout=5)", 0.7)
    assert written_first(0.29, write(0.69)) is None
    # A copy at 0.3 or more goes first, and the n-gram is not even written.
    assert written_first(0.3, write(1.0)) is None
    assert asked == [0.5, 0.49, 0.7, 0.69]


def test_nothing_below_the_gate_or_without_evidence() -> None:
    before = "z = session.get("
    assert ngram_continuation(counts(before, CALLS), before, min_chance=0.7) is None
    assert ngram_continuation(counts(before, "nothing alike here\n"), before) is None


def prompt(before: str, *files: str) -> CompletionPrompt:
    return CompletionPrompt(
        "python",
        "a.py",
        PackedContext(before, "", (), 0),
        text="",
        before_cursor=before,
        reference_texts=files,
    )


async def test_the_backend_falls_back_when_nothing_long_enough_matches() -> None:
    # The typed line "q = zz(" occurs nowhere (the lookup needs all 7 characters of it);
    # "= zz(" does, twice, and goes on alike.
    ask = prompt("q = zz(", "a = zz(alpha, 1)\nb = zz(alpha, 1)\n")
    assert (
        await LookupBackend(LookupSettings(fallback="none")).generate(ask, GenerationLimits()) == []
    )
    written = await LookupBackend().generate(ask, GenerationLimits())
    assert [(c.text, c.origin) for c in written] == [("alpha, 1)", "lookup:ngram")]
    assert written[0].details["ngram_chance"] == 1.0


async def test_a_sure_ngram_goes_before_a_weak_copy() -> None:
    # The whole line "x.value = load(" occurs once, far from code like the cursor's, and went
    # on with "beta" (a weak copy: chance of acceptance ~0.22 < 0.3); " = load(" went on with
    # "alpha" at 5 of its 6 places (0.83 >= 0.7).
    text = (
        "import zeta\nx.value = load(beta)\nqux.run()\nfoo.bar()\n"
        + "\n" * 6
        + "y = load(alpha)\n" * 5
        + "x.value = load("
    )
    limits = GenerationLimits(candidates=3)
    found = await LookupBackend().generate(prompt(text), limits)
    assert [(c.text, c.origin) for c in found] == [
        ("alpha)", "lookup:ngram"),
        ("beta)", "lookup:prefix"),
    ]
    assert found[1].details["confidence"] < 0.3 < 0.7 < found[0].details["ngram_chance"]
    one = await LookupBackend().generate(prompt(text), GenerationLimits(candidates=1))
    assert [c.text for c in one] == ["alpha)"]
    copied = await LookupBackend(LookupSettings(fallback="none")).generate(prompt(text), limits)
    assert [c.text for c in copied] == ["beta)"]
