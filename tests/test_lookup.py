"""The lookup backend: longest match of the text before the cursor, and what followed it."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from ghostcomplete.backends import CompletionPrompt, GenerationLimits, LookupBackend
from ghostcomplete.backends.config import LookupSettings
from ghostcomplete.backends.lookup.backend import (
    find_occurrences,
    longest_match,
    reindented,
    similarity,
    surrounding_identifiers,
)
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.snippets import Snippet


def brute_longest(query: str, source: str, min_length: int) -> int:
    best = 0
    for length in range(min_length, len(query) + 1):
        if source.find(query[-length:], 0, len(source) - 1) >= 0:
            best = length
    return best


@settings(max_examples=200, deadline=None)
@given(st.text("ab\n", max_size=40), st.text("ab\n", max_size=60), st.integers(1, 4))
def test_longest_match_agrees_with_brute_force(query: str, source: str, min_length: int) -> None:
    length, end = longest_match(query, source, min_length)
    assert length == brute_longest(query, source, min_length)
    if length:
        assert source[end - length : end] == query[-length:]
        assert end < len(source)


def prompt(prefix: str, suffix: str = "", snippets=(), references=()) -> CompletionPrompt:
    return CompletionPrompt(
        "python",
        "a.py",
        PackedContext(prefix, suffix, tuple(snippets), 0),
        text="",
        reference_texts=tuple(references),
    )


# The tests of matching and copying turn the confidence cut off; its own tests follow.
WHOLE = LookupSettings(cut="none")


async def test_continues_from_the_prefix() -> None:
    text = "rows.append(Row(name='a', size=1))\nrows.append(Row("
    found = await LookupBackend(WHOLE).generate(prompt(text), GenerationLimits())
    assert found[0].text == "name='a', size=1))"
    assert found[0].origin == "lookup:prefix"


async def test_prefers_the_longest_match_across_sources() -> None:
    snippet = Snippet("file:///s.py", 0, "config.timeout_seconds = 30\n", 1.0)
    reference = "config.timeout = 5\n"
    found = await LookupBackend(WHOLE).generate(
        prompt("x = 1\nconfig.timeout_s", snippets=[snippet], references=[reference]),
        GenerationLimits(candidates=3),
    )
    assert found[0].text == "econds = 30"


async def test_copies_from_the_whole_document_beyond_the_packed_prefix() -> None:
    far = "registry.register('alpha', handler=on_alpha, retries=3)\n"
    near = "x = 1\n" * 50 + "registry.register('alpha', "
    packed = prompt(near[-200:])
    found = await LookupBackend(WHOLE).generate(packed, GenerationLimits())
    assert not found or found[0].text != "handler=on_alpha, retries=3)"
    whole = dataclasses.replace(packed, before_cursor=far + near, after_cursor="\n")
    found = await LookupBackend(WHOLE).generate(whole, GenerationLimits())
    assert found[0].text == "handler=on_alpha, retries=3)"
    assert found[0].origin == "lookup:prefix"
    # copyFrom "prompt" judges what a model would see: the packed prefix only.
    judge = LookupSettings(copy_from="prompt", cut="none")
    found = await LookupBackend(judge).generate(whole, GenerationLimits())
    assert not found or found[0].text != "handler=on_alpha, retries=3)"


async def test_of_equal_matches_the_one_in_similar_surroundings_wins() -> None:
    # Both places match "):\n    data = load()\n    response = client.get(" alike; the nearer
    # one is in a test of orders, the farther one among lines about users, as is the cursor.
    users = (
        "def test_user_profile(me):\n"
        "    data = load()\n"
        "    response = client.get(f'/users/{user.id}/profile')\n"
        "    assert response.json()['name'] == user.name\n\n"
    )
    orders = (
        "def test_order_total(me):\n"
        "    data = load()\n"
        "    response = client.get(f'/orders/{order.id}/total')\n"
        "    assert response.json()['total'] == order.total\n\n"
    )
    cursor = "def test_user_settings(self):\n    data = load()\n    response = client.get("
    after = "\n    assert response.json()['name'] == user.name\n"
    before = users + "\n" * 6 + orders + "\n" * 6 + cursor
    asked = dataclasses.replace(prompt(before, after), before_cursor=before, after_cursor=after)
    found = await LookupBackend(WHOLE).generate(asked, GenerationLimits(candidates=2))
    assert [c.text for c in found] == [
        "f'/users/{user.id}/profile')",
        "f'/orders/{order.id}/total')",
    ]
    assert found[0].details["matched_chars"] == found[1].details["matched_chars"]
    assert found[0].details["similarity"] > found[1].details["similarity"]

    # place "nearest", the plain lookup: the nearer place, whatever its surroundings.
    nearest = LookupBackend(LookupSettings(cut="none", place="nearest"))
    found = await nearest.generate(asked, GenerationLimits(candidates=2))
    assert [c.text for c in found] == [
        "f'/orders/{order.id}/total')",
        "f'/users/{user.id}/profile')",
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.text("ab x\n", min_size=1, max_size=60), st.lists(st.text("ab x\n", max_size=80), max_size=3)
)
def test_every_place_found_matches_and_the_best_comes_first(query: str, files: list[str]) -> None:
    sources = [query, *files]
    around = surrounding_identifiers(query, "")
    found = find_occurrences(query, sources, around, Scope.BLOCK, 20, 400)
    line_prefix = query[query.rfind("\n") + 1 :]
    indented_only = bool(line_prefix) and not line_prefix.strip()
    for place in found:
        source = sources[place.source]
        needle = query[-place.length :]
        starts = [i for i in range(len(source)) if source.startswith(needle, i)]
        rests = [source[i + len(needle) :] for i in starts]
        if indented_only:
            rests = [reindented(rest) for rest in rests]
        assert any(rest.startswith(place.text) for rest in rests)
        assert 0.0 <= place.similarity <= 1.0
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
    per_source = [sum(p.source == i for p in found) for i in range(len(sources))]
    assert max(per_source, default=0) <= 16


def test_surrounding_identifiers_skip_the_lines_the_place_is_on() -> None:
    before = "import os\nalpha = beta\nx = call("
    after = "rest, of_line)\ngamma(delta)\n"
    assert surrounding_identifiers(before, after) == {
        "import",
        "os",
        "alpha",
        "beta",
        "gamma",
        "delta",
    }
    assert similarity(frozenset(), frozenset()) == 0.0
    assert similarity(frozenset({"a", "b"}), frozenset({"b", "c"})) == 1 / 3


async def test_copy_from_prompt_ignores_the_whole_files() -> None:
    snippet = Snippet("file:///s.py", 0, "client.fetch(url, timeout=5)\n", 1.0)
    reference = "client.fetch_all(urls, retries=3)\n"
    ask = prompt("x = 1\nclient.fetch", snippets=[snippet], references=[reference])
    limits = GenerationLimits(candidates=3)
    from_files = await LookupBackend(WHOLE).generate(ask, limits)
    assert [c.text for c in from_files] == ["(url, timeout=5)", "_all(urls, retries=3)"]
    prompt_only = LookupBackend(LookupSettings(copy_from="prompt", cut="none"))
    assert [c.text for c in await prompt_only.generate(ask, limits)] == ["(url, timeout=5)"]


async def test_blank_line_needs_a_match_across_the_line_break() -> None:
    text = "def a():\n    return 1\n\ndef b():\n    "
    found = await LookupBackend().generate(prompt(text), GenerationLimits())
    assert [c.text for c in found] == ["return 1"]
    assert await LookupBackend().generate(prompt("zzz\n    "), GenerationLimits()) == []


async def test_block_scope_takes_the_indented_body() -> None:
    text = (
        "def load(path):\n    with open(path) as f:\n        return f.read()\n\nprint(1)\n"
        "def save(path):\n    with open(path) as f:\n        "
    )
    found = await LookupBackend(WHOLE).generate(
        prompt(text), GenerationLimits(scope=Scope.BLOCK, max_lines=10)
    )
    assert found[0].text == "return f.read()"


async def test_nothing_when_nothing_repeats() -> None:
    assert (
        await LookupBackend().generate(prompt("completely_unique_name = "), GenerationLimits())
        == []
    )


def test_a_copy_from_a_deeper_place_is_lined_up_with_the_cursor() -> None:
    """The match ends part way into the deeper place's indentation: the rest of it moves
    the whole copy left, as a human would paste it."""
    nested = "    def run(self):\n        with lock:\n            if ready:\n                go()\n"
    assert reindented("    if ready:\n        go()\n    done()") == "if ready:\n    go()\ndone()"
    assert reindented("\n    go()") == "\n    go()"  # the match ended its line: nothing to move
    query = "class B:\n    def stop(self):\n        with lock:\n        "
    found = find_occurrences(query, [query, nested], frozenset(), Scope.BLOCK, 20, 400)
    assert found[0].text == "if ready:\n            go()"
