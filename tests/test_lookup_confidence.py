"""The confidence cut: a copied continuation is cut where it stops being likely."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ghostcomplete.backends import CompletionPrompt, GenerationLimits, LookupBackend
from ghostcomplete.backends.config import LookupSettings
from ghostcomplete.backends.lookup.backend import (
    Occurrence,
    continuation_counts,
    lead_and_agreement,
)
from ghostcomplete.backends.lookup.confidence import (
    CALIBRATION,
    ContinuationCounts,
    PieceEvidence,
    acceptance_chance,
    confident_cut,
    place_chance,
)
from ghostcomplete.ranker.budget import PackedContext

CALLS = "".join(
    f"client.send(method, url, headers=headers, {last})\n"
    for last in ("timeout=1", "retries=2", "verify=False", "stream=True")
)


def prompt(prefix: str) -> CompletionPrompt:
    return CompletionPrompt("python", "a.py", PackedContext(prefix, "", (), 0), text="")


def test_a_continuation_every_occurrence_agrees_on_is_kept_whole() -> None:
    text = "assert_equal(result, expected)\n" * 3 + "assert_equal("
    cut = confident_cut("result, expected)", text, ContinuationCounts([text]))
    assert cut is not None
    assert cut.text == "result, expected)"
    assert cut.confidence == 1.0


def test_a_continuation_is_cut_where_the_occurrences_disagree() -> None:
    text = CALLS + "client.send("
    cut = confident_cut(
        "method, url, headers=headers, stream=True)", text, ContinuationCounts([text])
    )
    assert cut is not None
    assert cut.text == "method, url, headers=headers,"
    assert cut.confidence == 1.0


def test_the_text_before_the_cursor_is_not_evidence() -> None:
    # "load(" occurs twice before the cursor; the occurrence ending at the cursor has no
    # continuation and must not count as a place that went on differently.
    text = "first = load(alpha)\nthird = load("
    counts = ContinuationCounts([text])
    assert counts.chance(text, "alpha") == 1.0
    assert ContinuationCounts([text + "\n"]).chance(text, "alpha") < 1.0


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0.01, 0.96),
    st.floats(0.0, 1.0),
    st.sampled_from((3, 6, 12, 24, 48, 96)),
    st.integers(1, 2000),
    st.integers(0, 400),
)
def test_a_place_that_matched_further_makes_its_piece_likelier(
    chance: float, share: float, order: int, matched: int, typed: int
) -> None:
    evidence = PieceEvidence(chance, share, order)
    nearer = place_chance(evidence, matched, typed)
    further = place_chance(evidence, matched + 100, typed)
    assert 0.0 < nearer <= further < 1.0
    sure = PieceEvidence(0.99, 1.0, order)  # the places agree: the count stands
    assert place_chance(sure, matched, typed) == 0.99


def test_a_twin_is_copied_further_than_the_places_agree() -> None:
    # The header before the cursor occurs once more, above its twin's docstring; three
    # other docstrings begin alike and go on otherwise. Copied from the twin, which matched
    # the whole header, the docstring is shown whole; not knowing the place, only its start.
    doc = '"""Split one header line into its name and its value, both stripped."""'
    before = "def parse_header_line(self, line: str) -> tuple[str, str]:\n    "
    others = "".join(f'    """Split one {word} and more"""\n' for word in ("row", "cell", "file"))
    counts = ContinuationCounts([before, "", before + doc + "\n" + others])
    twin = confident_cut(doc, before, counts, matched=len(before))
    assert twin is not None and twin.text == doc
    unknown = confident_cut(doc, before, counts)
    assert unknown is not None and unknown.text == '"""Split one'


async def test_the_backend_follows_a_twin_method_it_matched_whole() -> None:
    # The new method's header occurs in another file, above a docstring; three other
    # methods' docstrings begin alike and go on otherwise. The backend passes the place's
    # match to the cut, and the docstring is shown whole.
    doc = '"""Split one header line into its name and its value, both stripped."""'
    header = "    def parse_header_line(self, line: str) -> tuple[str, str]:\n        "
    others = "".join(
        f'    def parse_{word}(self):\n        """Split one {word} and more"""\n'
        for word in ("row", "cell", "file")
    )
    twin = "class Old:\n" + header + doc + "\n        return line.split(':')\n" + others
    ask = CompletionPrompt(
        "python",
        "a.py",
        PackedContext("class New:\n" + header, "", (), 0),
        text="",
        reference_texts=(twin,),
    )
    shown = await LookupBackend().generate(ask, GenerationLimits())
    assert [c.text for c in shown] == [doc]


def test_nothing_when_the_context_never_occurs() -> None:
    counts = ContinuationCounts(["unrelated text"])
    assert counts.chance("zzzz", "q") == 0.0
    assert confident_cut("qqqq", "zzzz", counts) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text("ab (),\n", max_size=40), min_size=1, max_size=4), st.text("ab(", max_size=8)
)
def test_the_cut_is_a_start_of_the_text_with_a_chance(sources: list[str], text: str) -> None:
    before = sources[0]
    counts = ContinuationCounts(sources)
    cut = confident_cut(text, before, counts, min_chars=1)
    if cut is not None:
        assert text.startswith(cut.text)
        assert cut.text.strip()
        assert 0.0 < cut.confidence <= 1.0


async def test_the_backend_cuts_by_default_and_reports_its_confidence() -> None:
    found = await LookupBackend().generate(prompt(CALLS + "client.send("), GenerationLimits())
    assert [c.text for c in found] == ["method, url, headers=headers,"]
    assert found[0].details["cut_chance"] == 1.0
    assert 0.5 < found[0].details["confidence"] < 1.0  # the chance of being accepted
    whole = LookupBackend(LookupSettings(cut="none"))
    uncut = await whole.generate(prompt(CALLS + "client.send("), GenerationLimits())
    assert [c.text for c in uncut] == ["method, url, headers=headers, stream=True)"]


async def test_min_confidence_hides_a_weak_guess() -> None:
    # "x.value = load(" went on with "beta" at one of its two places: a guess.
    text = "x.value = load(alpha)\nx.value = load(beta)\nx.value = load("
    shown = await LookupBackend().generate(prompt(text), GenerationLimits())
    assert [c.text for c in shown] == ["beta)"]
    assert 0.5 < shown[0].details["cut_chance"] < 0.9
    assert 0.3 < shown[0].details["confidence"] < 0.7
    strict = LookupBackend(LookupSettings(min_confidence=0.7, fallback="none"))
    assert await strict.generate(prompt(text), GenerationLimits()) == []


async def test_a_weak_best_copy_is_not_replaced_by_a_shorter_match() -> None:
    # The longest match (in the prefix) goes on with "beta"; a shorter match in another file
    # goes on with the more common "alpha", the surer cut. When the first is gated out
    # nothing is shown: the shorter match is not promoted.
    text = "x.value = load(alpha)\nx.value = load(beta)\nx.value = load("
    ask = CompletionPrompt(
        "python",
        "a.py",
        PackedContext(text, "", (), 0),
        text="",
        reference_texts=("y.value = load(alpha)\n",),
    )
    limits = GenerationLimits(candidates=3)
    shown = await LookupBackend().generate(ask, limits)
    assert [c.text for c in shown] == ["beta)", "alpha)"]
    assert shown[0].details["cut_chance"] < shown[1].details["cut_chance"]
    gate = shown[0].details["confidence"] + 0.01
    strict = LookupBackend(LookupSettings(min_confidence=gate, fallback="none"))
    assert await strict.generate(ask, limits) == []
    # The n-gram fallback may still speak, from its own evidence: "load(" went on with
    # "alpha" at 2 of its 3 places.
    written = await LookupBackend(LookupSettings(min_confidence=gate)).generate(ask, limits)
    assert [(c.text, c.origin) for c in written] == [("alpha)", "lookup:ngram")]


def test_the_chance_of_acceptance_rises_with_each_piece_of_evidence() -> None:
    base = acceptance_chance(0.3, 0.2, 5.0, 1, 20)
    assert 0.0 < base < 1.0
    assert acceptance_chance(0.6, 0.2, 5.0, 1, 20) > base  # a surer cut
    assert acceptance_chance(0.3, 0.6, 5.0, 1, 20) > base  # more similar surroundings
    assert acceptance_chance(0.3, 0.2, 30.0, 1, 20) > base  # a clearer lead
    assert acceptance_chance(0.3, 0.2, 5.0, 2, 20) > base  # another place agrees
    # Out-of-range inputs are clamped, never an error.
    assert (
        0.0
        < acceptance_chance(0.0, 0.0, -50.0, 0, 0)
        < acceptance_chance(1.0, 1.0, 1e9, 9, 400)
        < 1
    )
    assert len(CALIBRATION) == 6


def test_lead_and_agreement() -> None:
    places = [
        Occurrence(30, 0, 0, "alpha)", 0.5),  # score 80
        Occurrence(30, 2, 0, "alpha)", 0.1),  # score 40
        Occurrence(20, 1, 0, "beta)", 0.2),  # score 40
    ]
    assert lead_and_agreement(places, 0) == (40.0, 2)
    assert lead_and_agreement(places, 2) == (-40.0, 1)
    assert lead_and_agreement(places[:2], 0) == (1000.0, 2)  # nothing goes on differently


async def test_the_backend_reports_the_cut_and_its_chance_of_acceptance() -> None:
    text = "assert_equal(result, expected)\n" * 3 + "assert_equal("
    found = await LookupBackend(LookupSettings(min_confidence=0.0)).generate(
        prompt(text), GenerationLimits()
    )
    details = found[0].details
    assert found[0].text == "result, expected)"
    assert details["cut_chance"] == 1.0
    assert 0.5 < details["confidence"] < 1.0


def test_the_cut_counts_only_the_document_near_the_cursor() -> None:
    # A huge file would make every piece's count slow: 100,000 characters each side count.
    near = "first = load(alpha)\n" + "\n" * 1000 + "third = load("
    far = "other = load(beta)\n" + "#\n" * 60_000
    counts = continuation_counts([far + near, "\n" + "#\n" * 60_000 + "x = load(gamma)\n"])
    assert counts.chance("third = load(", "alpha") == 1.0  # beta and gamma are too far
    assert ContinuationCounts([far + near]).chance("third = load(", "alpha") < 1.0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text("ab (\n", max_size=60), min_size=1, max_size=4),
    st.lists(st.text("ab (\n", min_size=1, max_size=12), min_size=1, max_size=6),
)
def test_remembered_counts_answer_as_fresh_ones(sources: list[str], contexts: list[str]) -> None:
    """Counts remember what they searched (one request's cuts ask alike); a remembered answer
    is the one a fresh search gives."""
    shared = ContinuationCounts(sources)
    asks = [(context, piece) for context in contexts for piece in ("a", "b", "(", " ", "\n")]
    for context, piece in asks + asks[::-1]:
        assert shared.chance(context, piece) == ContinuationCounts(sources).chance(context, piece)
