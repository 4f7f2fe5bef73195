"""The GPU check's correctness steps (bench/device_check.py): the same greedy tokens on the
CPU provider and the one checked, and which provider ran each op of a graph.

The model is tiny and in float32 for the pass/fail comparison: its weights are scaled so that
the greedy token is never a near tie (bench/device_models.py), so any token that differs is a
provider computing something else, not rounding. At float16 and int4 the agreement is
reported, not judged: those differ from float32 on any provider.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ghostcomplete.backends.onnx.decode import Limits, decode, prefill
from ghostcomplete.backends.onnx.engine import OnnxModel, choose_providers, session_options
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import load_tokenizer
from ghostcomplete.bench.device_models import SHAPES, regular_tokens
from ghostcomplete.context.syntax import Scope

SMALL = "tiny-qwen2"
PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


def loaded(model_file: Path, provider: str, threads: int) -> OnnxModel:
    """The engine's model on ``provider``; a RuntimeError where it fell back to the CPU (the
    CUDA libraries did not load, say), which would make every comparison trivially equal."""
    model = OnnxModel(model_file, provider, threads)
    if model.provider != PROVIDERS[provider]:
        raise RuntimeError(f"asked for {provider}, onnxruntime ran {model.provider} (see its log)")
    return model


def greedy(model: OnnxModel, folder: Path, prompt: list[int], count: int, drafts: int) -> list[int]:
    free = Limits(StopRule(Scope.BLOCK, "", 1 << 20, 1 << 30), set(), count)
    start, _ = prefill(model, prompt)
    return decode(model, load_tokenizer(folder), start, free, None, drafts).tokens


def greedy_without_cache(model: OnnxModel, prompt: list[int], count: int) -> list[int]:
    tokens = list(prompt)
    for _ in range(count):
        logits, _ = model.forward(tokens, model.empty_cache(), last=1)
        tokens.append(int(np.argmax(logits[-1])))
    return tokens[len(prompt) :]


def test_prompt(vocab: int, length: int = 48, seed: int = 7) -> list[int]:
    """Random ids with a repeated stretch, so that prompt-lookup finds drafts."""
    rng = np.random.default_rng(seed)
    head = [int(i) for i in rng.integers(0, vocab, length // 2)]
    return head + head[: length - len(head)]


def correctness(folder: Path, provider: str, threads: int, count: int = 32) -> dict[str, Any]:
    model_file = folder / "model.onnx"
    vocab = regular_tokens(SHAPES[SMALL])
    prompt = test_prompt(vocab)
    cpu = loaded(model_file, "cpu", threads)
    checked = loaded(model_file, provider, threads)
    reference = greedy(cpu, folder, prompt, count, 0)
    found = greedy(checked, folder, prompt, count, 0)
    drafted = greedy(checked, folder, prompt, count, 8)
    uncached = greedy_without_cache(cpu, prompt, count)
    logits_cpu, _ = cpu.forward(prompt, cpu.empty_cache())
    logits_checked, _ = checked.forward(prompt, checked.empty_cache())
    scale = float(np.abs(logits_cpu).max())
    return {
        "model": f"{SMALL} fp32",
        "provider": checked.provider,
        "prompt_tokens": len(prompt),
        "new_tokens": count,
        "tokens_equal_cpu": found == reference,
        "first_difference": first_difference(found, reference),
        "cpu_cache_equals_no_cache": reference == uncached,
        "drafts_equal_plain": drafted == found,
        "max_logit_difference_relative": float(np.abs(logits_cpu - logits_checked).max()) / scale,
        "passed": found == reference == uncached == drafted,
    }


def first_difference(found: list[int], reference: list[int]) -> int | None:
    """The first position where two token lists differ (one may be shorter); None if equal."""
    for index, (a, b) in enumerate(zip(found, reference, strict=False)):
        if a != b:
            return index
    return None if len(found) == len(reference) else min(len(found), len(reference))


def placement(model_file: Path, provider: str) -> dict[str, dict[str, int]]:
    """Provider -> op type -> nodes it ran, from one profiled run of a 4-token prompt."""
    providers, _ = choose_providers(provider)
    with tempfile.TemporaryDirectory(prefix="ghostcomplete-profile-") as temporary:
        options = session_options(1)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(temporary) / "run")
        session = ort.InferenceSession(str(model_file), options, providers=providers)
        feed: dict[str, np.ndarray] = {}
        for value in session.get_inputs():
            dtype = np.float16 if value.type == "tensor(float16)" else np.float32
            if value.name == "input_ids":
                feed[value.name] = np.asarray([[1, 2, 3, 4]], dtype=np.int64)
            elif value.name == "attention_mask":
                feed[value.name] = np.ones((1, 4), dtype=np.int64)
            elif value.name.startswith("past_key_values."):
                heads, dim = value.shape[1], value.shape[3]
                feed[value.name] = np.zeros((1, int(heads), 0, int(dim)), dtype=dtype)
            else:  # how many positions get logits
                feed[value.name] = np.asarray([1], dtype=np.int64)
        session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text("utf-8"))
    counts: dict[str, Counter[str]] = {}
    for event in events:
        arguments = event.get("args") or {}
        kernel = str(event.get("name", "")).endswith("_kernel_time")
        if event.get("cat") == "Node" and kernel and "provider" in arguments:
            ran = arguments["provider"].replace("ExecutionProvider", "")
            counts.setdefault(ran, Counter())[arguments.get("op_name", "?")] += 1
    return {name: dict(ops) for name, ops in counts.items()}


def small_precision(folder: Path, provider: str, threads: int, count: int = 32) -> dict[str, Any]:
    """Op placement on ``provider`` and greedy agreement with the CPU at one precision."""
    model_file = folder / "model.onnx"
    prompt = test_prompt(regular_tokens(SHAPES[SMALL]))
    on_cpu = greedy(loaded(model_file, "cpu", threads), folder, prompt, count, 0)
    checked = loaded(model_file, provider, threads)
    found = greedy(checked, folder, prompt, count, 0)
    same = sum(a == b for a, b in zip(found, on_cpu, strict=False))
    ops = placement(model_file, provider)
    return {
        "provider": checked.provider,
        "agree_with_cpu": f"{same}/{count}",
        "first_difference": first_difference(found, on_cpu),
        "ops_by_provider": ops,
        "on_the_cpu": sorted(ops.get("CPU", {})) if provider != "cpu" else [],
    }
