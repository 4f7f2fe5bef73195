"""The prompt's layout for a model's KV cache: while the user types on one line, consecutive
prompts share at least 90 % of their tokens from the start (ranker/budget.py,
ranker/line_snippets.py, backends/onnx/prompt.py)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any, cast

import pytest
import tiktoken

from ghostcomplete.backends import Backend
from ghostcomplete.backends.base import Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx.backend import OnnxBackend, shipped_model_folder
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.prompt import fit_prompt
from ghostcomplete.backends.onnx.tokenizer import TiktokenTokenizer, Tokenizer, load_tokenizer
from ghostcomplete.bench.latency import kv_reuse
from ghostcomplete.bench.prompt_reuse import common_prefix
from ghostcomplete.completion.pipeline import CompletionRequest, CompletionResult, Pipeline
from ghostcomplete.completion.settings import resolve
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import (
    LINE_ALLOWANCE,
    LINE_SUFFIX_SHARE,
    LINE_SUFFIX_TOKENS,
    PREFIX_STEP,
    Budget,
    PackedContext,
    _keep_tail_lines,
    aligned_start,
    budget_for,
    pack,
    suffix_share_for,
)
from ghostcomplete.ranker.identifiers import identifiers
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim
from ghostcomplete.ranker.snippets import best_window
from ghostcomplete.ranker.tokens import TokenCounter

pytestmark = pytest.mark.timeout(60)

QWEN = Path(__file__).parent / "fixtures" / "onnx" / "tiny-qwen2-instruct"
TINY = Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama"
WINDOW = "/w/"


def module(name: str, words: list[str], functions: int) -> str:
    """A Python file of ``functions`` small functions over ``words``."""
    parts = [f'"""The {name} module."""\n\nimport math\n']
    for index in range(functions):
        a, b = words[index % len(words)], words[(index * 7 + 3) % len(words)]
        parts.append(
            f"\n\ndef {a}_{b}_{index}(items, limit={index}):\n"
            f"    total = 0\n"
            f"    for item in items:\n"
            f"        if item.{a} > limit:\n"
            f"            total += math.floor(item.{b} * {index + 1})\n"
            f"    return total\n"
        )
    return "".join(parts)


WORDS = ["price", "weight", "volume", "count", "rate", "size", "depth", "width", "height"]
NEIGHBOURS = [
    DocumentSnapshot(f"file://{WINDOW}{name}.py", "python", module(name, WORDS[i:] + WORDS, 14), 1)
    for i, name in enumerate(["orders", "stock", "shipping"])
]
ABOVE = module("report", WORDS, 40) + "\n\ndef summary(items):\n    "
TYPED = "return price_weight_0(items) + volume_count_2(items, limit=depth_rate)"
BELOW = "\n\n\n" + module("tail", WORDS[3:], 12)


class PromptOnly:
    name = "prompt-only"
    remote = False

    def __init__(self, family: str) -> None:
        self.fim_family = family

    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Any]:
        raise AssertionError("not called")


def typed_prompts(pipeline: Pipeline, text: str = TYPED) -> list[CompletionPrompt]:
    """The prompt of each keystroke while ``text`` is typed on one line."""
    prompts = []
    for end in range(1, len(text) + 1):
        document = DocumentSnapshot(
            f"file://{WINDOW}report.py", "python", ABOVE + text[:end] + BELOW, end
        )
        lines = (ABOVE + text[:end]).split("\n")
        request = CompletionRequest(document, len(lines) - 1, len(lines[-1]), NEIGHBOURS)
        result = CompletionResult(request.completion_id, [])
        cursor = pipeline.cut(request, result)
        assert cursor is not None, result.skipped
        prompts.append(pipeline.prepare(request, cursor, float("inf"), {}).prompt)
    return prompts


def shares(ids: list[list[int]]) -> list[float]:
    return [common_prefix(a, b) / len(b) for a, b in itertools.pairwise(ids)]


def pipeline_for(family: str, **settings: Any) -> Pipeline:
    resolved, errors = resolve({"context": {"snippets": "bm25"}, **settings})
    assert errors == []
    pipeline = Pipeline(cast(Backend, PromptOnly(family)), resolved, [Path(WINDOW)])
    for neighbour in NEIGHBOURS:
        pipeline.index_for_context(neighbour)
    return pipeline


def code_tokenizer_with_every_marker() -> Tokenizer:
    """The built-in model's code BPE with every family's FIM markers as single tokens, as each
    family's own tokenizer has them (spelled out as text they would cost 5-20 tokens each)."""
    builtin = load_tokenizer(shipped_model_folder())
    assert isinstance(builtin, TiktokenTokenizer)
    encoding = builtin.encoding
    markers = {
        mark.strip()
        for template in TEMPLATES.values()
        for mark in (template.prefix, template.suffix, template.middle, template.file_sep)
        if mark and mark.strip()
    } | {t.repo_name for t in TEMPLATES.values() if t.repo_name}
    ranks = encoding._mergeable_ranks
    special = {mark: len(ranks) + index for index, mark in enumerate(sorted(markers))}
    return TiktokenTokenizer(
        tiktoken.Encoding(
            "markers", pat_str=encoding._pat_str, mergeable_ranks=ranks, special_tokens=special
        )
    )


@pytest.mark.parametrize(
    ("family", "room"),
    [
        # A model whose window is larger than the budget: the pipeline's packing decides.
        *[(family, 32_000) for family in TEMPLATES],
        # The built-in model's window: the backend fits the prompt into it.
        *[(family, 448) for family in TEMPLATES],
    ],
)
def test_typing_on_one_line_keeps_90_percent_of_the_prompt(family: str, room: int) -> None:
    coder = code_tokenizer_with_every_marker()
    pipeline = pipeline_for(family)
    prompts = typed_prompts(pipeline)
    # The snippets would change as the line is typed, and are kept for the line instead.
    assert len({p.context.snippets for p in prompts}) == 1
    assert prompts[0].context.snippets
    fim = None if family == "plain" else family
    ids = [fit_prompt(p, fim, coder, room) for p in prompts]
    assert all(len(i) <= room for i in ids)
    found = shares(ids)
    # Typing 70 characters moves the prefix's start (by a step of lines) twice at most.
    assert sum(share < 0.9 for share in found) <= 2, (family, sorted(found)[:3])
    assert sum(found) / len(found) >= 0.9


def test_the_fixture_churns_snippets_when_each_keystroke_reranks() -> None:
    pipeline = pipeline_for("qwen")
    chosen = set()
    for prompt in typed_prompts(pipeline):
        pipeline.line_snippets.clear()  # as if every keystroke chose again
        chosen.add(prompt.context.snippets)
    fresh = {
        tuple(pipeline.choose_snippets(cursor, NEIGHBOURS)) for cursor in _cursors(pipeline, TYPED)
    }
    assert len(fresh) > 1  # without the per-line choice the prompt's start would move


def _cursors(pipeline: Pipeline, text: str) -> list[Any]:
    found = []
    for end in range(1, len(text) + 1, 6):
        document = DocumentSnapshot(
            f"file://{WINDOW}report.py", "python", ABOVE + text[:end] + BELOW, end
        )
        lines = (ABOVE + text[:end]).split("\n")
        request = CompletionRequest(document, len(lines) - 1, len(lines[-1]), NEIGHBOURS)
        found.append(pipeline.cut(request, CompletionResult(request.completion_id, [])))
    return found


def test_ranked_offers_the_most_similar_window_when_asked() -> None:
    """``similarWindowLines``: after the definitions, the recent files' best Jaccard window
    (Copilot's) of that many lines; no BM25 chunk repeats its lines."""
    cursor = _cursors(pipeline_for("qwen"), TYPED)[-1]
    plain = pipeline_for("qwen", context={"snippets": "ranked"}).choose_snippets(cursor, NEIGHBOURS)
    assert plain and all(s.kind != "window" for s in plain)
    pipeline = pipeline_for("qwen", context={"snippets": "ranked", "similarWindowLines": 8})
    chosen = pipeline.choose_snippets(cursor, NEIGHBOURS)
    windows = [s for s in chosen if s.kind == "window"]
    assert len(windows) == 1
    window = windows[0]
    assert window.text.count("\n") == 7
    best = max(
        NEIGHBOURS,
        key=lambda d: best_window(
            pipeline.line_cache.lines_of(d),
            frozenset(identifiers("\n".join(cursor.prefix.split("\n")[-8:]))),
            8,
        )[0],
    )
    assert window.uri == best.uri
    end = window.start_line + 8
    for chunk in chosen:
        if chunk.kind == "chunk" and chunk.uri == window.uri:
            chunk_end = chunk.start_line + chunk.text.count("\n") + 1
            assert chunk_end <= window.start_line or chunk.start_line >= end


def test_snippets_are_chosen_again_on_a_new_line_and_after_a_close() -> None:
    pipeline = pipeline_for("qwen")
    first = typed_prompts(pipeline, "return price_weight_0(items)")[-1].context.snippets
    key_before = pipeline.line_snippets._key
    assert key_before is not None
    # A new line: the text above the cursor's line changed.
    typed_prompts(pipeline, "x = 1\n    return rate_size_4(items)")
    assert pipeline.line_snippets._key != key_before
    assert first  # chosen at all
    pipeline.forget(f"file://{WINDOW}report.py")
    assert pipeline.line_snippets._key is None


# --- the trimming rules (golden cases) -------------------------------------------------------
@pytest.mark.parametrize(
    ("first", "lines", "expected"),
    [(0, 10, 0), (1, 10, PREFIX_STEP), (PREFIX_STEP, 10, PREFIX_STEP), (9, 10, 9), (5, 8, 5)],
)
def test_aligned_start(first: int, lines: int, expected: int) -> None:
    assert PREFIX_STEP == 4
    assert aligned_start(first, PREFIX_STEP, lines) == expected


def test_the_prefix_start_moves_in_steps_of_whole_lines() -> None:
    counter = TokenCounter()
    lines = [f"value_{i} = compute({i}, {i * 3})" for i in range(60)]  # 11 tokens each
    text = "\n".join(lines) + "\ntotal = "
    starts = []
    for extra in range(0, 100, 3):
        kept, tokens = _keep_tail_lines(text + "x" * extra, 300, counter, PREFIX_STEP)
        assert tokens <= 300 and kept.endswith("x" * extra)
        starts.append(lines.index(kept.split("\n")[0]))
    # Golden: 100 characters typed on the cursor's line move the start once, by one step.
    assert starts == [36] * 18 + [40] * 16
    # Golden, 140 tokens: line by line, the tail from line 48 fits (12 lines and 3 tokens of
    # "total = "); with the rule, the cursor's line counts as its allowance of 16 tokens, 11
    # whole lines fit (from line 49) and the start goes to the next step, line 52.
    loose, used = _keep_tail_lines(text, 140, counter)
    assert (loose.split("\n")[0], used) == ("value_48 = compute(48, 144)", 135)
    kept, used = _keep_tail_lines(text, 140, counter, PREFIX_STEP)
    assert (kept.split("\n")[0], used) == ("value_52 = compute(52, 156)", 8 * 11 + LINE_ALLOWANCE)


def test_the_start_keeps_its_step_when_the_text_was_cut_for_counting() -> None:
    counter = TokenCounter()
    text = "".join(f"line {i}\n" for i in range(5000)) + "end"
    kept, _ = _keep_tail_lines(text, 100, counter, PREFIX_STEP)
    number = int(kept.split("\n")[0].split()[1])
    assert number % PREFIX_STEP == 0


def test_the_window_cuts_the_prefix_at_a_step_and_keeps_it_while_typing() -> None:
    coder = load_tokenizer(shipped_model_folder())
    above = "".join(f"row_{i} = {i}\n" for i in range(200))
    starts = set()
    for typed in ("total = r", "total = row_1", "total = row_1 + row_2 + row_3 * 4"):
        ids = fit_prompt(prompt_for(above + typed, "\nprint(total)\n"), "starcoder", coder, 120)
        assert len(ids) <= 120
        text = b"".join(coder.token_bytes(t) for t in ids).decode()
        assert text.endswith(typed + "\nprint(total)\n")
        first = int(text.split("row_", 1)[1].split(" ", 1)[0])
        assert first % PREFIX_STEP == 0
        starts.add(first)
    # About 30 characters typed on the line: the cursor line's allowance grew by one step
    # of LINE_ALLOWANCE tokens at most, so the start moved at most once.
    assert len(starts) <= 2
    assert LINE_ALLOWANCE == 16


def prompt_for(prefix: str, suffix: str, family: str = "starcoder") -> CompletionPrompt:
    context = PackedContext(prefix, suffix, (), 0, suffix_share=LINE_SUFFIX_SHARE)
    text = render_fim(context, family, "python", "demo.py")
    return CompletionPrompt("python", "demo.py", context, text, TEMPLATES[family].stop)


def test_one_line_completions_keep_a_short_suffix() -> None:
    assert suffix_share_for(Scope.LINE, 0.2) == LINE_SUFFIX_SHARE
    assert suffix_share_for(Scope.LINE, 0.01) == 0.01
    assert suffix_share_for(Scope.BLOCK, 0.2) == 0.2
    counter = TokenCounter()
    suffix = "".join(f"print(value_{i})\n" for i in range(400))
    packed = pack("x = ", suffix, [], counter, Budget(2000, suffix_share_for(Scope.LINE, 0.2)))
    assert counter.count(packed.suffix) <= 0.05 * 2000
    assert packed.suffix_share == LINE_SUFFIX_SHARE


def test_a_one_line_suffix_is_the_rest_of_the_line_and_a_few_lines_after_it() -> None:
    counter = TokenCounter()
    after = "".join(f"print(value_{i})\n" for i in range(400))
    line = budget_for(Scope.LINE, 2048, 0.2, 0.3)
    packed = pack("x = ", "\n" + after, [], counter, line)
    assert 0 < counter.count(packed.suffix) <= LINE_SUFFIX_TOKENS
    assert packed.suffix.startswith("\nprint(value_0)\nprint(value_1)\n")
    # The rest of the cursor's line is kept whole (within the share), and then nothing more.
    rest = ", ".join(f"argument_{i}" for i in range(15)) + ")"
    packed = pack("call(", rest + "\n" + after, [], counter, line)
    assert packed.suffix == rest and counter.count(rest) > LINE_SUFFIX_TOKENS
    # A block completion keeps its share; a block's budget has no such cap.
    block = budget_for(Scope.BLOCK, 2048, 0.2, 0.3)
    assert block.suffix_tokens is None
    assert counter.count(pack("x = ", after, [], counter, block).suffix) > 300


# --- the engine's own figure -------------------------------------------------------------------
def test_the_engine_reports_the_reuse_through_the_pipeline() -> None:
    # A tiny model with random weights always writes something, so every call reports; its
    # window (256 tokens) makes the backend fit the prompt as it does for small models.
    resolved, errors = resolve(
        {"context": {"snippets": "bm25"}, "completion": {"candidates": 1, "timeoutMs": 30_000}}
    )
    assert errors == []
    tiny = OnnxSettings(
        path=str(TINY), threads=1, max_new_tokens=4, warmup=False, fim_family="qwen"
    )
    backend = OnnxBackend(tiny)
    pipeline = Pipeline(backend, resolved, [Path(WINDOW)])
    found: list[dict[str, float]] = []

    async def run() -> None:
        for end in range(40, 48):
            text = ABOVE + TYPED[:end]
            document = DocumentSnapshot(f"file://{WINDOW}report.py", "python", text + BELOW, end)
            lines = text.split("\n")
            request = CompletionRequest(document, len(lines) - 1, len(lines[-1]), NEIGHBOURS)
            result = await pipeline.complete(request)
            if result.backend_details:
                found.append(result.backend_details)
        await backend.aclose()

    asyncio.run(run())
    assert len(found) >= 6, "the model gave no candidate"
    later = found[1:]
    rows = kv_reuse([{"cache": None, "backendDetails": d} for d in later])
    assert rows["… model calls with a candidate"] == len(later)
    assert rows["prompt reused from the KV cache, mean %"] >= 90, later


def test_kv_reuse_reads_model_calls_only() -> None:
    reports = [
        {"cache": None, "backendDetails": {"prompt_tokens": 100.0, "reused_tokens": 95.0}},
        {"cache": None, "backendDetails": {"prompt_tokens": 100.0, "reused_tokens": 45.0}},
        {"cache": "typing", "backendDetails": {"prompt_tokens": 100.0, "reused_tokens": 0.0}},
        {"cache": None, "backendDetails": {}},  # the lookup reports no cache
        {"cache": None},
    ]
    rows = kv_reuse(reports)
    assert rows["prompt reused from the KV cache, mean %"] == 70.0
    assert rows["… p10 / p50 %"] == "45.0 / 45.0"
    assert rows["… model calls with a candidate"] == 2
    assert kv_reuse([{"cache": None, "backendDetails": {}}]) == {}


def test_pipeline_passes_the_backends_details_on() -> None:
    class Details:
        name = "details"
        remote = False
        fim_family = "qwen"

        async def generate(
            self, prompt: CompletionPrompt, limits: GenerationLimits
        ) -> list[Candidate]:
            return [Candidate("x", "t", {"prompt_tokens": 10.0, "reused_tokens": 9.0})]

    resolved, _ = resolve()
    pipeline = Pipeline(cast(Backend, Details()), resolved)
    document = DocumentSnapshot("file:///w/a.py", "python", "value = compute(1)\nother = ", 1)
    result = asyncio.run(pipeline.complete(CompletionRequest(document, 1, 8)))
    assert result.backend_details == {"prompt_tokens": 10.0, "reused_tokens": 9.0}
