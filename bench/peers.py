"""Peer engines on this machine: llama.cpp's ``llama-server`` and ``llama-bench``, built by
``make peers`` from the llama-cpp-python sdist into the cache, run on the real GGUF
(``python -m ghostcomplete.model.gguf_parts``).

``python -m ghostcomplete.bench.peers`` measures, in one run on one machine, llama-bench's
prompt and generation speed and a typing replay through our server with the http backend
pointed at llama-server, with both processes' peak memory.

    python -m ghostcomplete.bench.peers [--threads 2] [--files 4] [--api llamacpp --api openai]
        [--settings LABEL=JSON ... [--only-settings]] [--repetitions 3] [--out DIR]
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

from ghostcomplete.bench.acceptance import merged
from ghostcomplete.bench.peers_llamacpp import LlamaServer, PeerMissing, peer_binary, peer_gguf

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
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read()
    # wait4 gives this child's own peak memory (ru_maxrss, KiB on Linux).
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"llama-bench failed ({process.returncode}): {' '.join(command)}")
    return json.loads(output), round(usage.ru_maxrss / 1024, 1)


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
        http: dict[str, Any] = {"api": api, "url": server.base}
        if api == "openai":
            http = {"api": api, "url": server.base + "/v1", "fimFamily": "qwen"}
        settings = merged({"backend": {"kind": "http", "http": http}}, extra or {})
        folder = out / f"replay-{api}{'-' + label if label else ''}"
        command = [
            *_ghostcomplete(),
            "bench", "latency",
            "--backend", "http",
            "--settings", json.dumps(settings),
            "--files", str(files),
            "--seed", str(seed),
            "--out", str(folder),
        ]  # fmt: skip
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
        server_rss = server.peak_rss_mib()
        reuse = server.prompt_reuse()
    summary = json.loads((folder / "latency.json").read_text())["runs"][0]["summary"]
    stages, counts = summary["latency_ms"], summary["counts"]
    latency = stages["keystroke → answer"]
    return {
        "api": api,
        "label": label,
        "settings": settings,
        "keystroke_p50_ms": _round(latency["p50"]),
        "keystroke_p95_ms": _round(latency["p95"]),
        "answered": latency["n"],
        "with_a_suggestion": counts.get("answers with a suggestion"),
        "backend_p50_ms": _round((stages.get("server backend") or {}).get("p50")),
        "llama_server_peak_rss_mib": server_rss,
        "llama_server": reuse,
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


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Commit `{result['commit']}`, {result['date']}, {result['machine']}, "
        f"{result['threads']} threads, `{result['model']}`.",
        "",
    ]
    if bench := result.get("llama_bench"):
        lines += [
            f"llama-bench (llama.cpp `{bench['build']}`, peak RSS {bench['peak_rss_mib']} MiB):",
            "",
            "| test | depth | tokens/s | ± |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['test']} | {r['depth']} | {r['tokens_per_s']} | {r['stddev']} |"
            for r in bench["rows"]
        ]
        lines.append("")
    if replays := result.get("replays"):
        lines += [
            "| typing replay through our server | keystroke p50 ms | p95 ms | answered "
            "| with a suggestion | backend p50 ms | generations started (prompt reused p50) "
            "| llama-server peak RSS MiB | our server peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| http → llama-server, `api: {r['api']}`{' ' + r['label'] if r['label'] else ''} "
            f"| {r['keystroke_p50_ms']} | {r['keystroke_p95_ms']} | {r['answered']} "
            f"| {r['with_a_suggestion']} | {r['backend_p50_ms'] or '–'} "
            f"| {r['llama_server']['generations_started']} "
            f"({r['llama_server']['reused_share_p50']}) "
            f"| {r['llama_server_peak_rss_mib']} | {r['ghostcomplete_peak_rss_mib']} |"
            for r in replays
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ghostcomplete.bench.peers",
        description="llama.cpp on the same model and machine: llama-bench, and a typing replay "
        "through our server's http backend pointed at llama-server.",
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
    parser.add_argument("--no-llama-bench", action="store_true")
    parser.add_argument("--no-replay", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench-results") / "peers")
    args = parser.parse_args(argv)
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
    }
    if not args.no_llama_bench:
        print("llama-bench ...", file=sys.stderr, flush=True)
        result["llama_bench"] = llama_bench_rows(gguf, args.threads, args.repetitions)
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
                result["replays"].append(
                    replay(gguf, args.threads, api, args.files, args.out, args.seed, extra, label)
                )
    (args.out / "peers.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    text = report(result)
    (args.out / "peers.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
