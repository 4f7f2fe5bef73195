"""Copilot's snippet baseline, token-budget packing and FIM prompts."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.ranker.budget import Budget, PackedContext, pack
from ghostcomplete.ranker.identifiers import identifiers
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim
from ghostcomplete.ranker.snippets import (
    LineIdentifierCache,
    Snippet,
    WindowSettings,
    best_window,
    copilot_snippets,
)
from ghostcomplete.ranker.tokens import TokenCounter


def brute_force_best(lines: list[frozenset[str]], reference: frozenset[str], window: int):
    best = (0.0, 0)
    width = min(window, len(lines))
    for start in range(len(lines) - width + 1):
        words = frozenset().union(*lines[start : start + width])
        union = words | reference
        score = len(words & reference) / len(union) if union else 0.0
        if score > best[0]:
            best = (score, start)
    return best


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.frozensets(st.sampled_from("abcdefghij"), max_size=4), min_size=1, max_size=30),
    st.frozensets(st.sampled_from("abcdefghij"), min_size=1, max_size=6),
    st.integers(1, 8),
)
def test_sliding_window_matches_brute_force(lines, reference, window) -> None:
    score, start = best_window(lines, reference, window)
    expected_score, expected_start = brute_force_best(lines, reference, window)
    assert abs(score - expected_score) < 1e-9
    if expected_score > 0:
        assert start == expected_start


def test_identifiers_drop_keywords() -> None:
    assert identifiers("def total(self, items): return sum(items)") == [
        "total",
        "items",
        "sum",
        "items",
    ]


def test_copilot_snippets_pick_the_most_similar_window_per_file() -> None:
    noise = "\n".join(f"unrelated_{i} = other_{i}" for i in range(100))
    relevant = (
        "def charge(customer, invoice):\n    return gateway.charge(customer.card, invoice.total)"
    )
    neighbour = DocumentSnapshot("file:///pay.py", "python", noise + "\n" + relevant + "\n" + noise)
    unrelated = DocumentSnapshot("file:///zzz.py", "python", noise)
    prefix = "def refund(customer, invoice):\n    gateway.refund(customer.card, invoice."
    found = copilot_snippets(
        prefix, [unrelated, neighbour], LineIdentifierCache(), WindowSettings(window_lines=10)
    )
    assert found[0].uri == "file:///pay.py"
    assert "gateway.charge" in found[0].text
    assert all(s.uri != "file:///zzz.py" for s in found)


def test_pack_respects_budget_and_shares() -> None:
    counter = TokenCounter()
    rng = random.Random(7)
    prefix = "\n".join(f"line_{i} = value_{rng.randint(0, 999)}" for i in range(2000))
    suffix = "\n".join(f"after_{i} = {i}" for i in range(2000))
    snippets = [
        Snippet(f"file:///s{i}.py", 0, f"snippet_{i} = 1\n" * 30, 1 - i / 10) for i in range(6)
    ]
    budget = Budget(max_tokens=1000, suffix_share=0.2, snippet_share=0.3)
    packed = pack(prefix, suffix, snippets, counter, budget)
    assert packed.tokens <= 1000
    assert counter.count(packed.suffix) <= 200
    assert packed.prefix and prefix.endswith(packed.prefix)
    assert suffix.startswith(packed.suffix)
    assert packed.snippets and packed.snippets[0].uri == "file:///s0.py"
    # With a small file everything fits.
    small = pack("a = 1\nb = ", "\nc = 3", snippets[:1], counter, budget)
    assert small.prefix == "a = 1\nb = " and small.suffix == "\nc = 3"


def test_render_fim_for_each_family() -> None:
    packed = pack("def f():\n    return ", "\n", [], TokenCounter(), Budget())
    for family, template in TEMPLATES.items():
        prompt = render_fim(packed, family, "python", "src/app.py")
        assert template.prefix in prompt and template.middle in prompt, family
        assert "src/app.py" in prompt  # as a path comment or in the multi-file format
        if not template.suffix_first:
            assert prompt.endswith(template.middle)
    starcoder = render_fim(packed, "starcoder", "python", "a.py")
    assert starcoder == "<fim_prefix># Path: a.py\ndef f():\n    return <fim_suffix>\n<fim_middle>"


def test_templates_use_each_familys_documented_tokens() -> None:
    snippet = Snippet("file:///w/models.py", 0, "class Product:\n    sku: str", 1.0)
    packed = PackedContext("def f():\n    return ", "\n\nx = 1\n", (snippet,), 0)
    paths = {"file:///w/models.py": "models.py"}

    def render(family: str) -> str:
        return render_fim(packed, family, "python", "app.py", paths, repo="shop")

    comment_head = (
        "# Path: app.py\n# Compare this snippet from models.py:\n# class Product:\n#     sku: str\n"
    )
    assert render("starcoder") == (
        f"<fim_prefix>{comment_head}def f():\n    return <fim_suffix>\n\nx = 1\n<fim_middle>"
    )
    assert render("starcoder2") == (
        "<repo_name>shop\n<file_sep>models.py\nclass Product:\n    sku: str\n<file_sep>app.py\n"
        "<fim_prefix>def f():\n    return <fim_suffix>\n\nx = 1\n<fim_middle>"
    )
    assert render("qwen") == (
        "<|repo_name|>shop\n<|file_sep|>models.py\nclass Product:\n    sku: str\n"
        "<|file_sep|>app.py\n<|fim_prefix|>def f():\n    return <|fim_suffix|>\n\nx = 1\n"
        "<|fim_middle|>"
    )
    assert render("deepseek") == (
        f"<｜fim▁begin｜>{comment_head}def f():\n    return <｜fim▁hole｜>\n\nx = 1\n<｜fim▁end｜>"
    )
    assert render("codellama") == (
        f"<PRE> {comment_head}def f():\n    return  <SUF>\n\nx = 1\n <MID>"
    )
    assert render("codegemma") == (
        f"<|fim_prefix|>{comment_head}def f():\n    return <|fim_suffix|>\n\nx = 1\n<|fim_middle|>"
    )
    assert render("codestral") == f"[SUFFIX]\n\nx = 1\n[PREFIX]{comment_head}def f():\n    return "
    assert render("plain") == f"{comment_head}def f():\n    return "
