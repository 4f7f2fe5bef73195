"""Our engine's rows in the peer benchmark, without the peers or a real model: the
llama-bench-shaped speed rows on a tiny GroupQueryAttention decoder written at test time, the
side-by-side table, issue 20's goal, the chart and the result files on canned results; and
the engine's spinning option."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_decoders import qwen2_config, write_qwen2_folder

from ghostcomplete.backends.base import BackendError
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.decode import prefill
from ghostcomplete.backends.onnx.engine import OnnxModel, session_options
from ghostcomplete.bench import peers, peers_engine, peers_llamacpp, peers_report

pytestmark = pytest.mark.timeout(60)

CONFIG = qwen2_config(vocab_size=256, max_positions=256)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("int4")
    write_qwen2_folder(folder, CONFIG, "int4", seed=3)
    (folder / peers_engine.MANIFEST).write_text(json.dumps({"precision": "int4"}))
    return folder


def test_rows_are_shaped_like_llama_bench_and_rates_come_from_the_clock(tiny: Path):
    model = OnnxModel(tiny / "model.onnx", "cpu", 1)
    ticks = itertools.count()
    # Every reading of the clock is half a second after the one before: each timed run
    # (two readings) lasts 0.5 s, whatever the machine does.
    measured = peers_engine.measure(
        model, 2, prompts=(20, 40), new_tokens=4, chunk=8, clock=lambda: next(ticks) * 0.5
    )
    assert [(r["test"], r["depth"]) for r in measured["rows"]] == [
        ("pp20", 0),
        ("pp40", 0),
        ("tg4", 20),
        ("tg4", 40),
    ]
    assert [r["tokens_per_s"] for r in measured["rows"]] == [40.0, 80.0, 8.0, 8.0]
    assert all(r["stddev"] == 0.0 for r in measured["rows"])
    assert set(measured["cpu_ms_per_new_token"]) == {"tg4@20", "tg4@40"}
    assert measured["prefill_chunk"] == 8


def test_each_decode_run_starts_from_the_same_prompt_cache(tiny: Path):
    model = OnnxModel(tiny / "model.onnx", "cpu", 1)
    assert model.shares_buffers
    start, _ = prefill(model, list(range(30)))
    first = peers_engine.generate(model, start.logits, start.past, 5)
    assert first.length == 35
    # Runs after the first write the same positions: the prompt's cache is still whole, and
    # the second run computes exactly what the first did.
    assert start.past.usable == 30
    again = peers_engine.generate(model, start.logits, start.past, 5)
    np.testing.assert_array_equal(np.stack(first.arrays()), np.stack(again.arrays()))


def test_spinning_is_a_session_option_that_changes_no_output(tiny: Path):
    assert session_options(2).get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spun = session_options(2, spinning=True)
    assert spun.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    ids = list(range(12))
    quiet = OnnxModel(tiny / "model.onnx", "cpu", 2)
    spinning = OnnxModel(tiny / "model.onnx", "cpu", 2, spinning=True)
    assert spinning.spinning and not quiet.spinning
    expected, _ = quiet.forward(ids, quiet.empty_cache())
    found, _ = spinning.forward(ids, spinning.empty_cache())
    np.testing.assert_array_equal(found, expected)


def test_the_child_prints_the_rows_and_the_manifests_precision(
    tiny: Path, capsys: pytest.CaptureFixture[str]
):
    arguments = ["--threads", "1", "--repetitions", "1", "--prompts", "16,24", "--new-tokens", "2"]
    assert peers_engine.main([str(tiny), *arguments, "--chunk", "8"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["precision"] == "int4"
    assert printed["shared_buffers"] is True
    assert [r["test"] for r in printed["rows"]] == ["pp16", "pp24", "tg2", "tg2"]
    assert all(r["tokens_per_s"] > 0 for r in printed["rows"])
    assert printed["peak_rss_mib"] > 0  # the process's own, as peers_engine runs alone


def test_precision_and_folder_come_from_the_manifest_or_the_name(tiny: Path, tmp_path: Path):
    assert peers_engine.precision_of(tiny) == "int4"
    bare = tmp_path / "some-model-fp32"
    bare.mkdir()
    assert peers_engine.precision_of(bare) == "some-model-fp32"
    assert peers.engine_folder(str(tiny)) == tiny.resolve()
    with pytest.raises(BackendError, match=r"no model\.onnx"):
        peers.engine_folder(str(bare))
    with pytest.raises(BackendError):
        peers.engine_folder("not-installed-anywhere")


def _rows(rates: list[float]) -> list[dict[str, Any]]:
    keys = peers_report.SPEED_COLUMNS
    return [
        {"test": t, "depth": d, "tokens_per_s": r, "stddev": 1.0}
        for (t, d), r in zip(keys, rates, strict=True)
    ]


CANNED: dict[str, Any] = {
    "commit": "abc1234",
    "date": "2026-12-06",
    "machine": "2 cores, x86_64, Linux",
    "threads": 2,
    "model": "m.gguf",
    "load_average": "0.90 1.10 1.30",
    "llama_bench": {
        "build": "0c1e570",
        "peak_rss_mib": 650.0,
        "rows": [
            *_rows([206.3, 176.5, 19.8, 14.6]),
            {"test": "tg16", "depth": 0, "tokens_per_s": 26.4, "stddev": 0.3},
        ],
    },
    "engines": [
        {
            "precision": "int4",
            "spinning": False,
            "rows": _rows([150.0, 120.0, 30.0, 25.0]),
            "cpu_ms_per_new_token": {"tg16@512": 55.2},
            "peak_rss_mib": 900.0,
        },
        {
            "precision": "fp32",
            "spinning": True,
            "rows": _rows([90.0, 60.0, 10.0, 8.0])[:2],
            "peak_rss_mib": 2900.0,
        },
    ],
    "replays": [
        {
            "backend": "http",
            "api": "llamacpp",
            "label": "",
            "keystroke_p50_ms": 200.0,
            "keystroke_p95_ms": 900.0,
            "answered": 100,
            "requests": 400,
            "with_a_suggestion": 40,
            "backend_p50_ms": 800.0,
            "llama_server": {"generations_started": 64, "reused_share_p50": 0.5},
            "llama_server_peak_rss_mib": 700.0,
            "ghostcomplete_peak_rss_mib": 118.0,
        },
        {
            "backend": "onnx",
            "precision": "int4",
            "label": "",
            "keystroke_p50_ms": 130.0,
            "keystroke_p95_ms": 700.0,
            "answered": 120,
            "requests": 400,
            "with_a_suggestion": 50,
            "backend_p50_ms": None,
            "ghostcomplete_peak_rss_mib": 1000.0,
        },
        {
            "backend": "onnx",
            "precision": "fp32",
            "label": "",
            "keystroke_p50_ms": 400.0,
            "keystroke_p95_ms": 2000.0,
            "answered": 10,
            "requests": 400,
            "with_a_suggestion": 1,
            "backend_p50_ms": 1500.0,
            "ghostcomplete_peak_rss_mib": 3000.0,
        },
    ],
}


def test_the_side_by_side_table_has_a_line_per_engine():
    text = peers_report.report(CANNED)
    assert "load average 0.90 1.10 1.30" in text
    assert (
        "| llama.cpp (llama-bench, GGUF Q4_K_M) | 206.3 ± 1.0 | 176.5 ± 1.0 | 19.8 ± 1.0 "
        "| 14.6 ± 1.0 | – | 650.0 |" in text
    )
    assert (
        "| ours, int4 | 150.0 ± 1.0 | 120.0 ± 1.0 | 30.0 ± 1.0 | 25.0 ± 1.0 | 55.2 | 900.0 |"
        in text
    )
    # What was not measured shows as such, not as zero.
    assert "| ours, fp32, spinning | 90.0 ± 1.0 | 60.0 ± 1.0 | – | – | – | 2900.0 |" in text
    assert (
        "| onnx → our engine, int4 | 130.0 | 700.0 | 120 / 400 | 50 (12.5 %) | – | – | – |" in text
    )
    assert (
        "| http → llama-server, `api: llamacpp` | 200.0 | 900.0 | 100 / 400 | 40 (10.0 %) " in text
    )


def test_the_goal_is_the_engines_p50_over_llama_servers():
    verdict = peers_report.goal(CANNED)
    assert verdict is not None
    assert verdict["verdicts"] == [
        {"replay": "onnx → our engine, int4", "ratio": 0.65, "met": True, "suggestions": [50, 40]},
        {"replay": "onnx → our engine, fp32", "ratio": 2.0, "met": False, "suggestions": [1, 40]},
    ]
    assert "onnx → our engine, fp32: 2.0×, missed." in peers_report.report(CANNED)
    # Empty answers on both sides are timed, and said to be.
    empty = json.loads(json.dumps(CANNED))
    for replay in empty["replays"]:
        replay["with_a_suggestion"] = 0
    assert "int4: 0.65×, met (neither showed a suggestion" in peers_report.report(empty)
    # Without a llama-server replay there is nothing to compare with.
    alone = {**CANNED, "replays": CANNED["replays"][1:]}
    assert peers_report.goal(alone) is None


def test_the_result_files_are_json_markdown_and_a_png(tmp_path: Path):
    written = peers.write_result(json.loads(json.dumps(CANNED)), tmp_path)
    assert [p.name for p in written] == ["peers.json", "peers.md", "peers.png"]
    saved = json.loads((tmp_path / "peers.json").read_text())
    assert saved["goal"]["verdicts"][0]["met"] is True
    assert (tmp_path / "peers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "peers.md").read_text() == peers_report.report(saved)
    empty = {k: CANNED[k] for k in ("commit", "date", "machine", "threads", "model")}
    assert peers_report.chart(empty, tmp_path / "none.png") is None


def test_a_latency_result_becomes_a_replay_row():
    latency = {
        "runs": [
            {
                "summary": {
                    "latency_ms": {
                        "keystroke → answer": {"p50": 123.456, "p95": 987.65, "n": 77},
                        "server backend": {"p50": 456.78},
                    },
                    "counts": {
                        "requests": 300,
                        "answers with a suggestion": 12,
                        "server peak RSS MiB": 990.5,
                    },
                }
            }
        ]
    }
    row = peers.replay_summary(latency)
    assert row["keystroke_p50_ms"] == 123.5
    assert row["keystroke_p95_ms"] == 987.6
    assert (row["answered"], row["requests"], row["with_a_suggestion"]) == (77, 300, 12)
    assert row["backend_p50_ms"] == 456.8
    assert row["ghostcomplete_peak_rss_mib"] == 990.5


def test_a_missing_engine_folder_is_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert peers.main(["--engine", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 1
    assert "no model.onnx" in capsys.readouterr().err


def test_a_child_gives_its_output_and_its_own_peak_memory():
    grow = "import sys; b = b'x' * (64 << 20); sys.stdout.write('done')"
    output, rss = peers_llamacpp.run_measured([sys.executable, "-c", grow])
    assert output == b"done"
    assert rss >= 64  # MiB: the child's own peak, the 64 MiB it held included
    with pytest.raises(RuntimeError, match="failed"):
        peers_llamacpp.run_measured([sys.executable, "-c", "raise SystemExit(3)"])


async def test_the_backend_setting_reaches_the_session(tiny: Path):
    spun = OnnxBackend(OnnxSettings(path=str(tiny), threads=1, spinning=True, warmup=False))
    quiet = OnnxBackend(OnnxSettings(path=str(tiny), threads=1, warmup=False))
    try:
        assert spun.model.spinning and not quiet.model.spinning
    finally:
        await spun.aclose()
        await quiet.aclose()


def test_two_models_of_one_precision_are_told_apart_by_folder():
    small = {"precision": "int4", "folder": "/m/qwen2.5-coder-0.5b-int4", "rows": []}
    large = {"precision": "int4", "folder": "/m/qwen2.5-coder-1.5b-int4", "rows": []}
    labels = [line["label"] for line in peers_report.speed_lines({"engines": [small, large]})]
    assert labels == [
        "ours, int4 (qwen2.5-coder-0.5b-int4)",
        "ours, int4 (qwen2.5-coder-1.5b-int4)",
    ]
    assert [line["label"] for line in peers_report.speed_lines({"engines": [small]})] == [
        "ours, int4"
    ]
