"""Peer engines on this machine: llama.cpp's ``llama-server`` and ``llama-bench``, built by
``make peers`` from the llama-cpp-python sdist into the cache, run on the real GGUF
(``python -m ghostcomplete.model.gguf_parts``).

``python -m ghostcomplete.bench.peers`` measures, in one run on one machine, llama-bench's
prompt and generation speed and a typing replay through our server with the http backend
pointed at llama-server, with both processes' peak memory. With ``--engine FOLDER`` (an
imported model: ``ghostcomplete model import``; repeatable, one per precision) it measures
our engine beside them: the same prompt lengths, new tokens and threads as llama-bench
(``bench.peers_engine``, in a child process of its own for its peak memory), and a typing
replay through our server with the onnx backend on that folder (same files, same seed).
It writes peers.json, peers.md and peers.png into ``--out``.

    python -m ghostcomplete.bench.peers [--threads 2] [--files 4] [--api llamacpp --api openai]
        [--settings LABEL=JSON ... [--only-settings]] [--repetitions 3] [--out DIR]
        [--engine FOLDER ...] [--spinning off|on|both] [--engine-replays all|first|none]
        [--no-llama-bench] [--no-replay]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.installed import installed_folder
from ghostcomplete.bench.acceptance import merged
from ghostcomplete.bench.peers_engine import precision_of
from ghostcomplete.bench.peers_llamacpp import (
    LlamaServer,
    PeerMissing,
    http_backend,
    peer_binary,
    peer_gguf,
    run_measured,
)
from ghostcomplete.bench.peers_report import chart, goal, report

# --- the benchmark ---------------------------------------------------------------------------


def run_llama_bench(
    gguf: Path, threads: int, arguments: Sequence[str], repetitions: int
) -> tuple[list[dict[str, Any]], float]:
    """llama-bench's JSON rows, and its peak resident memory in MiB."""
    command = [
        str(peer_binary("llama-bench")),
        "-m", str(gguf),
        "-t", str(threads),
        "-r", str(repetitions),
        "-o", "json",
        *arguments,
    ]  # fmt: skip
    output, rss = run_measured(command)
    return json.loads(output), rss


def llama_bench_rows(gguf: Path, threads: int, repetitions: int) -> dict[str, Any]:
    """Prompt processing of 512 and 2,000 tokens; 16 new tokens after 0, 512 and 2,000."""
    prompt_rows, prompt_rss = run_llama_bench(
        gguf, threads, ["-p", "512,2000", "-n", "0"], repetitions
    )
    decode_rows, decode_rss = run_llama_bench(
        gguf, threads, ["-p", "0", "-n", "16", "-d", "0,512,2000"], repetitions
    )
    rows = [
        {
            "test": f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}",
            "depth": row.get("n_depth", 0),
            "tokens_per_s": round(row["avg_ts"], 1),
            "stddev": round(row["stddev_ts"], 1),
        }
        for row in prompt_rows + decode_rows
    ]
    build = prompt_rows[0].get("build_commit", "") if prompt_rows else ""
    return {"rows": rows, "peak_rss_mib": max(prompt_rss, decode_rss), "build": build}


def engine_rows(folder: Path, threads: int, repetitions: int, spinning: bool) -> dict[str, Any]:
    """``bench.peers_engine`` on an imported model's folder, in a child process: its rows
    and that process's peak resident memory in MiB."""
    command = [
        sys.executable, "-m", "ghostcomplete.bench.peers_engine", str(folder),
        "--threads", str(threads),
        "--repetitions", str(repetitions),
        *(["--spinning"] if spinning else []),
    ]  # fmt: skip
    output, rss = run_measured(command)
    return {**json.loads(output), "peak_rss_mib": rss}


def _ghostcomplete() -> list[str]:
    script = Path(sys.executable).with_name("ghostcomplete")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "ghostcomplete.server.cli"]


def _round(value: Any) -> Any:
    return round(value, 1) if isinstance(value, float) else value


def replay(
    gguf: Path,
    threads: int,
    api: str,
    files: int,
    out: Path,
    seed: int,
    extra: dict[str, Any] | None = None,
    label: str = "",
) -> dict[str, Any]:
    """``bench latency`` through our server, its http backend pointed at llama-server;
    ``extra`` settings merged over the backend's."""
    with LlamaServer(gguf, threads=threads) as server:
        http = http_backend(server.base, api)
        settings = merged({"backend": {"kind": "http", "http": http}}, extra or {})
        folder = out / f"replay-{api}{'-' + label if label else ''}"
        summary = latency_replay("http", settings, files, seed, folder)
        server_rss = server.peak_rss_mib()
        reuse = server.prompt_reuse()
    return {
        "backend": "http",
        "api": api,
        "label": label,
        "settings": settings,
        **summary,
        "llama_server_peak_rss_mib": server_rss,
        "llama_server": reuse,
    }


def engine_replay(
    model: Path,
    threads: int,
    files: int,
    out: Path,
    seed: int,
    extra: dict[str, Any] | None = None,
    label: str = "",
) -> dict[str, Any]:
    """``bench latency`` through our server, its onnx backend on an imported model's folder
    (the model runs inside our server, so its peak RSS is the model's too)."""
    onnx = {"path": str(model), "threads": threads}
    settings = merged({"backend": {"kind": "onnx", "onnx": onnx}}, extra or {})
    precision = precision_of(model)
    folder = out / f"replay-onnx-{precision}{'-' + label if label else ''}"
    return {
        "backend": "onnx",
        "precision": precision,
        "label": label,
        "settings": settings,
        **latency_replay("onnx", settings, files, seed, folder),
    }


def latency_replay(
    backend: str, settings: dict[str, Any], files: int, seed: int, folder: Path
) -> dict[str, Any]:
    command = [
        *_ghostcomplete(),
        "bench", "latency",
        "--backend", backend,
        "--settings", json.dumps(settings),
        "--files", str(files),
        "--seed", str(seed),
        "--out", str(folder),
    ]  # fmt: skip
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    return replay_summary(json.loads((folder / "latency.json").read_text()))


def replay_summary(latency_json: dict[str, Any]) -> dict[str, Any]:
    """What the peer tables keep of ``bench latency``'s result."""
    summary = latency_json["runs"][0]["summary"]
    stages, counts = summary["latency_ms"], summary["counts"]
    latency = stages["keystroke → answer"]
    return {
        "keystroke_p50_ms": _round(latency["p50"]),
        "keystroke_p95_ms": _round(latency["p95"]),
        "answered": latency["n"],
        "requests": counts.get("requests"),
        "with_a_suggestion": counts.get("answers with a suggestion"),
        "backend_p50_ms": _round((stages.get("server backend") or {}).get("p50")),
        "ghostcomplete_peak_rss_mib": counts.get("server peak RSS MiB"),
        "counts": counts,
    }


def _commit() -> str:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return found.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ghostcomplete.bench.peers",
        description="llama.cpp on the same model and machine: llama-bench, and a typing replay "
        "through our server's http backend pointed at llama-server; with --engine, our engine "
        "beside them.",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=3, help="llama-bench -r")
    parser.add_argument("--files", type=int, default=4, help="files typed in each replay")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--api", action="append", choices=("llamacpp", "openai"), help="replays (default both)"
    )
    parser.add_argument(
        "--settings",
        action="append",
        default=[],
        metavar="LABEL=JSON",
        help="one more replay per --api with these server settings merged in (repeatable)",
    )
    parser.add_argument(
        "--only-settings", action="store_true", help="skip the replay with default settings"
    )
    parser.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="FOLDER|NAME",
        help="an imported model (folder or installed name) to measure in our engine beside "
        "llama.cpp, with a typing replay through our onnx backend (repeatable)",
    )
    parser.add_argument(
        "--spinning",
        choices=("off", "on", "both"),
        default="off",
        help="our engine's rows with onnxruntime's idle threads spinning or not",
    )
    parser.add_argument(
        "--engine-replays",
        choices=("all", "first", "none"),
        default="all",
        help="typing replays through the onnx backend: on every --engine, the first, or none",
    )
    parser.add_argument("--no-llama-bench", action="store_true")
    parser.add_argument("--no-replay", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-results") / "peers")
    args = parser.parse_args(argv)
    try:
        engines = [engine_folder(e) for e in args.engine]
    except BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        gguf = peer_gguf()
        peer_binary("llama-server")
        peer_binary("llama-bench")
    except PeerMissing as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "commit": _commit(),
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}",
        "threads": args.threads,
        "model": gguf.name,
        "load_average": load_average(),
    }
    if not args.no_llama_bench:
        print("llama-bench ...", file=sys.stderr, flush=True)
        result["llama_bench"] = llama_bench_rows(gguf, args.threads, args.repetitions)
    spins = {"off": [False], "on": [True], "both": [False, True]}[args.spinning]
    if engines:
        result["engines"] = []
    for folder in engines:
        for spinning in spins:
            print(f"our engine, {folder.name} ...", file=sys.stderr, flush=True)
            load = load_average()
            rows = engine_rows(folder, args.threads, args.repetitions, spinning)
            result["engines"].append({**rows, "load_average_before": load})
    if not args.no_replay:
        result["replays"] = []
        variants: list[tuple[str, dict[str, Any]]] = [("", {})]
        for option in args.settings:
            label, _, text = option.partition("=")
            variants.append((label, json.loads(text)))
        if args.only_settings:
            variants = variants[1:]
        for api in args.api or ["llamacpp", "openai"]:
            for label, extra in variants:
                print(f"typing replay, api {api} {label} ...", file=sys.stderr, flush=True)
                load = load_average()
                done = replay(
                    gguf, args.threads, api, args.files, args.out, args.seed, extra, label
                )
                result["replays"].append({**done, "load_average_before": load})
        replayed = {"all": engines, "first": engines[:1], "none": []}[args.engine_replays]
        for folder in replayed:
            for label, extra in variants:
                print(f"typing replay, onnx {folder.name} {label} ...", file=sys.stderr, flush=True)
                load = load_average()
                done = engine_replay(
                    folder, args.threads, args.files, args.out, args.seed, extra, label
                )
                result["replays"].append({**done, "load_average_before": load})
    result["load_average_after"] = load_average()
    write_result(result, args.out)
    return 0


def write_result(result: dict[str, Any], out: Path) -> list[Path]:
    """peers.json (with issue 20's goal where both kinds of replay ran), peers.md, and
    peers.png; the table is printed too."""
    if verdict := goal(result):
        result["goal"] = verdict
    written = [out / "peers.json", out / "peers.md"]
    written[0].write_text(json.dumps(result, indent=2, ensure_ascii=False))
    text = report(result)
    written[1].write_text(text)
    if (drawn := chart(result, out / "peers.png")) is not None:
        written.append(drawn)
    print(text)
    return written


def engine_folder(given: str) -> Path:
    """An imported model's folder, given as its path or its installed name."""
    path = Path(given).expanduser()
    if (path / "model.onnx").is_file():
        return path.resolve()
    if path.exists() or "/" in given:
        raise BackendError(
            f"{given} has no model.onnx: import one with `ghostcomplete model import`"
        )
    return installed_folder(given)


def load_average() -> str | None:
    """The 1-, 5- and 15-minute load averages: other work on the machine moves every row."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
