"""The GPU check (issue 20): the ONNX engine and the server on the CUDA provider, with
random-weight Qwen2.5-Coder-shaped models built where it runs. bench/device/check.sh runs it
on the device machine (bench/device/README.md); ``--provider cpu --quick`` runs the same code
on tiny shapes anywhere (tests/test_device_check.py).

    python -m ghostcomplete.bench.device_check --provider cuda [--out DIR] [--budget-s 210]
    python -m ghostcomplete.bench.device_check --provider cpu --quick [--out DIR]

Steps, most important first; each is recorded in DIR/device-check.json as soon as it ends,
one that fails is recorded with its error and the next one runs, and a step that would start
after ``--budget-s`` seconds is recorded as skipped:

1. the environment: onnxruntime, its providers, the GPU;
2. correctness: a tiny qwen2 in float32, greedy tokens on the CPU provider and on the one
   checked (both with the KV cache), against the CPU without a cache, and with prompt-lookup
   drafts; the prefill's logits compared;
3. the tiny model at each timed precision: which provider ran each op (a profiled run: the
   CUDA provider leaves to the CPU what it has no kernel for), and how many greedy tokens
   agree with the CPU's at the same precision;
4. per shape (0.5B, then 1.5B) and precision (fp16, then int4): time to first token and
   decode tokens/s of P prompt + N new tokens through the engine (model/measure.py's
   ``request_latency``), then, at the first precision, the same through the real server with
   20 files open (bench/device_server.py).

A table and the goal line come last (the device tool returns the end of the output).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ghostcomplete.backends.onnx.engine import choose_providers
from ghostcomplete.bench import device_server
from ghostcomplete.bench.context_speed import workspace_files
from ghostcomplete.bench.device_correctness import (
    PROVIDERS,
    SMALL,
    correctness,
    loaded,
    small_precision,
)
from ghostcomplete.bench.device_models import SHAPES, build, random_weights, regular_tokens
from ghostcomplete.bench.synthetic_tokenizer import write_tokenizer
from ghostcomplete.model.measure import request_latency

GOAL_SHAPE = "qwen2.5-coder-0.5b"
GOAL_MS = 60.0
RESULT_FILE = "device-check.json"


@dataclass(frozen=True)
class Plan:
    provider: str
    shapes: tuple[str, ...]
    precisions: tuple[str, ...]
    prompt_tokens: int
    new_tokens: int
    repeat: int
    server_requests: int
    server_lines: int
    threads: int
    budget_s: float


def plan_for(provider: str, quick: bool, budget_s: float | None, threads: int) -> Plan:
    if quick:
        return Plan(provider, (SMALL,), ("fp32",), 200, 16, 3, 3, 300, threads, budget_s or 50)
    return Plan(
        provider,
        (GOAL_SHAPE, "qwen2.5-coder-1.5b"),
        ("fp16", "int4"),
        2000,
        16,
        10,
        20,
        2000,
        threads,
        budget_s or 180,
    )


class Report:
    """The steps so far, rewritten to ``out/RESULT_FILE`` after each one."""

    def __init__(self, out: Path, plan: Plan) -> None:
        self.out = out
        self.started = time.monotonic()
        self.data: dict[str, Any] = {"plan": asdict(plan), "steps": []}
        out.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, budget_s: float, action: Callable[[], dict[str, Any]]) -> Any:
        began = time.monotonic()
        entry: dict[str, Any] = {"step": name}
        if began - self.started > budget_s:
            entry["skipped"] = f"past the time budget of {budget_s:.0f} s"
        else:
            try:
                entry.update(action())
            except Exception as error:  # one failed step must not stop the others
                entry["error"] = f"{type(error).__name__}: {error}"
        entry["seconds"] = round(time.monotonic() - began, 1)
        self.data["steps"].append(entry)
        self.data["wall_s"] = round(time.monotonic() - self.started, 1)
        (self.out / RESULT_FILE).write_text(json.dumps(self.data, indent=1) + "\n", "utf-8")
        print(f"[{self.data['wall_s']:6.1f} s] {name}: {_brief(entry)}", flush=True)
        return entry


def _brief(entry: dict[str, Any]) -> str:
    shown = {k: v for k, v in entry.items() if k != "step" and not isinstance(v, dict | list)}
    return json.dumps(shown)[:300]


def environment(provider: str) -> dict[str, Any]:
    providers, why = choose_providers(provider)
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnxruntime_file": str(Path(ort.__file__).parent),
        "available_providers": ort.get_available_providers(),
        "asked": providers,
        "why": why,
        "library_path": os.environ.get("LD_LIBRARY_PATH", "").split(":"),
    }
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv"]
        done = subprocess.run(query, capture_output=True, text=True, timeout=30)
        found["gpu"] = done.stdout.strip().splitlines()[-1] if done.returncode == 0 else None
    if provider == "cuda" and providers[0] != PROVIDERS["cuda"]:
        raise RuntimeError(f"the CUDA provider is not usable: {why}")
    return found


def engine(model_file: Path, plan: Plan) -> dict[str, Any]:
    started = time.perf_counter()
    model = loaded(model_file, plan.provider, plan.threads)
    load_s = time.perf_counter() - started
    try:
        timed = request_latency(model, plan.prompt_tokens, plan.new_tokens, plan.repeat)
    finally:
        provider = model.provider
        del model
        gc.collect()
    per_token = timed["request_decode_ms_per_token"]
    return {
        "provider": provider,
        "load_s": round(load_s, 1),
        "ttft_p50_ms": timed["request_prefill_p50_ms"],
        "decode_tokens_per_s": round(1000 / per_token, 1) if per_token > 0 else None,
        "p50_ms": timed["request_p50_ms"],
        "p95_ms": timed["request_p95_ms"],
        "runs": timed["request_runs"],
    }


def server(folder: Path, plan: Plan) -> dict[str, Any]:
    return device_server.run(
        folder,
        plan.provider,
        plan.prompt_tokens,
        plan.new_tokens,
        plan.server_requests,
        plan.server_lines,
        plan.threads,
    )


class Models:
    """Model folders under ``work``: random weights written at a precision, with a tokenizer
    learned once per vocabulary from ``texts``."""

    def __init__(self, work: Path, texts: list[str]) -> None:
        self.work = work
        self.texts = texts
        self.tokenizers: dict[int, Path] = {}

    def path(self, shape: str, precision: str) -> Path:
        return self.work / f"{shape}-{precision}"

    def write(self, shape: str, precision: str, weights: dict[str, np.ndarray]) -> Path:
        config = SHAPES[shape]
        regular = regular_tokens(config)
        if regular not in self.tokenizers:
            self.tokenizers[regular] = self.work / f"tokenizer-{regular}"
            write_tokenizer(self.tokenizers[regular], self.texts, regular)
        folder = self.path(shape, precision)
        shutil.rmtree(folder, ignore_errors=True)
        build(folder, config, weights, precision)
        shutil.copyfile(self.tokenizers[regular] / "tokenizer.json", folder / "tokenizer.json")
        return folder


def measure_shape(report: Report, plan: Plan, models: Models, shape: str) -> None:
    """The engine at each precision, the server at the first; weights made once."""
    weights: dict[str, np.ndarray] = {}

    def timed(precision: str) -> dict[str, Any]:
        if not weights:
            weights.update(random_weights(SHAPES[shape]))
        began = time.perf_counter()
        folder = models.write(shape, precision, weights)
        written = round(time.perf_counter() - began, 1)
        return {"written_s": written, **engine(folder / "model.onnx", plan)}

    for index, precision in enumerate(plan.precisions):
        entry = report.run(f"{shape} {precision} engine", plan.budget_s, partial(timed, precision))
        if index == 0 and "error" not in entry and "skipped" not in entry:
            folder = models.path(shape, precision)
            report.run(f"{shape} {precision} server", plan.budget_s, partial(server, folder, plan))
        shutil.rmtree(models.path(shape, precision), ignore_errors=True)
    weights.clear()
    gc.collect()


def run(plan: Plan, out: Path, work: Path) -> dict[str, Any]:
    report = Report(out, plan)
    budget = plan.budget_s
    found = report.run("environment", budget, partial(environment, plan.provider))
    if "error" in found:  # nothing below could measure what was asked
        return report.data
    texts = [text for _, text in workspace_files(device_server.RECENT + 1, plan.server_lines)]
    models = Models(work, texts)
    small = random_weights(SHAPES[SMALL], seed=1)

    def checked() -> dict[str, Any]:
        return correctness(models.write(SMALL, "fp32", small), plan.provider, plan.threads)

    def compared(precision: str) -> dict[str, Any]:
        folder = models.write(SMALL, precision, small)
        return small_precision(folder, plan.provider, plan.threads)

    report.run("correctness", budget, checked)
    for precision in plan.precisions:
        name = f"{SMALL} {precision}: placement and agreement"
        report.run(name, budget, partial(compared, precision))
    for shape in plan.shapes:
        measure_shape(report, plan, models, shape)
    return report.data


def table(data: dict[str, Any]) -> str:
    plan = data["plan"]
    shape = f"{plan['prompt_tokens']}+{plan['new_tokens']}"
    rows = [
        "| model | precision | path | provider | request | TTFT p50 ms | decode tok/s "
        "| p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for step in data["steps"]:
        name = step["step"]
        if not (name.endswith(" engine") or name.endswith(" server")):
            continue
        model, precision, path = name.split(" ")
        if "error" in step or "skipped" in step:
            why = step.get("error") or step.get("skipped")
            rows.append(f"| {model} | {precision} | {path} | — | {shape} | {why} | | | |")
        elif path == "engine":
            rows.append(
                f"| {model} | {precision} | engine | {step['provider']} | {shape} "
                f"| {step['ttft_p50_ms']} | {step['decode_tokens_per_s']} | {step['p50_ms']} "
                f"| {step['p95_ms']} |"
            )
        else:
            request = f"{step['prompt_tokens_p50']}+≤{plan['new_tokens']}"
            rows.append(
                f"| {model} | {precision} | server, {step['recent_files']} files open "
                f"| {plan['provider']} | {request} | — | — | {step['client_p50_ms']} "
                f"| {step['client_p95_ms']} |"
            )
    return "\n".join(rows) + "\n"


def summary(data: dict[str, Any]) -> list[str]:
    """The correctness line and the goal line."""
    lines = []
    steps = {step["step"]: step for step in data["steps"]}
    check = steps.get("correctness", {})
    if "passed" in check:
        lines.append(
            f"correctness ({check['model']}, {check['prompt_tokens']} + {check['new_tokens']} "
            f"greedy tokens, {check['provider']} vs CPU): "
            f"{'PASS' if check['passed'] else 'FAIL'} (tokens equal: {check['tokens_equal_cpu']}"
            f", cache = no cache: {check['cpu_cache_equals_no_cache']}, drafts = plain: "
            f"{check['drafts_equal_plain']}, max |Δlogit| / max |logit| = "
            f"{check['max_logit_difference_relative']:.2e})"
        )
    else:
        setup = steps.get("environment", {}).get("error")
        why = check.get("error") or check.get("skipped") or f"environment: {setup}"
        lines.append(f"correctness: not measured ({why})")
    plan = data["plan"]
    goal = steps.get(f"{GOAL_SHAPE} {plan['precisions'][0]} engine", {})
    figure = goal.get("p50_ms")
    if figure is None:
        verdict = "not measured"
    else:
        verdict = f"{figure} ms, {'met' if figure <= GOAL_MS else 'NOT met'}"
    lines.append(
        f"goal: {GOAL_SHAPE} p50 ≤ {GOAL_MS:.0f} ms for 2,000 + 16 tokens on an H100 "
        f"(engine, {plan['precisions'][0]}, {plan['provider']}): {verdict}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, fp32, seconds")
    parser.add_argument("--out", type=Path, default=Path("bench-results/device"))
    parser.add_argument("--work", type=Path, default=None, help="where models are written")
    parser.add_argument("--budget-s", type=float, default=None, help="start no step after this")
    parser.add_argument("--threads", type=int, default=0, help="CPU provider threads")
    args = parser.parse_args(argv)
    plan = plan_for(args.provider, args.quick, args.budget_s, args.threads)
    with tempfile.TemporaryDirectory(prefix="ghostcomplete-device-models-") as temporary:
        data = run(plan, args.out, args.work or Path(temporary))
    print()
    print(table(data), end="")
    for line in summary(data):
        print(line)
    print(f"results: {args.out / RESULT_FILE}")
    failed = [step["step"] for step in data["steps"] if "error" in step]
    passed = any(step.get("passed") for step in data["steps"])
    return 0 if passed and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
