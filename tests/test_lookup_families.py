"""The lookup's cut and gate per language family: fitted weights where a fit exists, the
plain lookup where none does."""

from __future__ import annotations

import pytest

from ghostcomplete.backends import CompletionPrompt, GenerationLimits, LookupBackend
from ghostcomplete.backends.config import LookupSettings
from ghostcomplete.backends.lookup import confidence
from ghostcomplete.backends.lookup.confidence import (
    CALIBRATION,
    FITS,
    PLACE_CALIBRATION,
    FamilyFit,
    fit_for,
)
from ghostcomplete.ranker.budget import PackedContext

# "load(" goes on with "beta" at the nearest place and with "alpha" at the other: the cut
# and gate make a weak guess of it, the plain lookup copies the nearest place whole.
TEXT = "x.value = load(alpha, 1)\nx.value = load(beta, 2)\nx.value = load("


def ask(language_id: str, text: str = TEXT) -> CompletionPrompt:
    return CompletionPrompt(language_id, "a.src", PackedContext(text, "", (), 0), text="")


@pytest.mark.timeout(10)
def test_python_has_a_fit_and_it_is_the_documented_constants() -> None:
    fit = fit_for("python")
    assert fit == FamilyFit(PLACE_CALIBRATION, CALIBRATION)
    assert all(len(f.place_calibration) == 5 and len(f.calibration) == 6 for f in FITS.values())


@pytest.mark.timeout(10)
def test_a_family_with_no_fit_has_none() -> None:
    assert fit_for("rust") is None
    assert fit_for("plaintext") is None


@pytest.mark.timeout(10)
async def test_a_family_with_no_fit_gets_the_plain_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(confidence, "FITS", {"python": FITS["python"]})
    limits = GenerationLimits()
    plain = LookupBackend(LookupSettings(place="nearest", cut="none", fallback="none"))
    expected = [c.text for c in await plain.generate(ask("python"), limits)]
    assert expected == ["beta, 2)"]
    # The default settings, for a family with no fit: the same whole copy, no cut details.
    for language_id in ("rust", "typescript"):
        found = await LookupBackend().generate(ask(language_id), limits)
        assert [c.text for c in found] == expected
        assert "confidence" not in found[0].details
    # Python, with its fit, cuts the guess where the two places part.
    cut = await LookupBackend().generate(ask("python"), limits)
    assert cut and "confidence" in cut[0].details


@pytest.mark.timeout(10)
async def test_the_weights_of_the_files_family_are_the_ones_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fit for the JavaScript family whose gate passes nothing: TypeScript, a member of that
    # family, is gated by it, while Python keeps its own.
    never = FamilyFit(PLACE_CALIBRATION, (-50.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    monkeypatch.setattr(confidence, "FITS", {"python": FITS["python"], "javascript": never})
    settings = LookupSettings(fallback="none")
    limits = GenerationLimits()
    assert await LookupBackend(settings).generate(ask("typescript"), limits) == []
    assert await LookupBackend(settings).generate(ask("python"), limits) != []
