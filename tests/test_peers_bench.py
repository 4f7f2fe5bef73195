"""The peer benchmark's own logic, without the peers: finding them, reading llama-server's log,
rendering the tables (the real runs are `make peers-test` and `python -m
ghostcomplete.bench.peers`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghostcomplete.bench import peers, peers_llamacpp

pytestmark = pytest.mark.timeout(10)

LOG = """\
0.03.097 I slot get_availabl: id  0 | task -1 | selected slot by LRU, t_last = -1
0.06.556 W srv          stop: cancel task, id_task = 0
0.15.086 I slot get_availabl: id  0 | task -1 | selected slot by LCP similarity, f_sim_best = 0.254 (> 0.100 thold), f_keep = 0.253
0.23.736 I slot get_availabl: id  0 | task -1 | selected slot by LCP similarity, f_sim_best = 0.900 (> 0.100 thold), f_keep = 0.9
0.24.001 W srv          stop: cancel task, id_task = 17
"""  # noqa: E501


def test_prompt_reuse_counts_generations_and_the_cached_share():
    assert peers_llamacpp.prompt_reuse(LOG) == {
        "generations_started": 3,
        "reused_share_p50": 0.254,
        "cancelled_tasks": 2,
    }
    assert peers_llamacpp.prompt_reuse("")["reused_share_p50"] is None


def test_missing_peers_say_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("GHOSTCOMPLETE_LLAMA_SERVER", raising=False)
    monkeypatch.delenv("GHOSTCOMPLETE_PEER_GGUF", raising=False)
    with pytest.raises(peers_llamacpp.PeerMissing, match="make peers"):
        peers_llamacpp.peer_binary("llama-server")
    with pytest.raises(peers_llamacpp.PeerMissing, match="make model-qwen"):
        peers_llamacpp.peer_gguf()
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("GHOSTCOMPLETE_LLAMA_SERVER", str(binary))
    assert peers_llamacpp.peer_binary("llama-server") == binary
    assert peers.main(["--out", str(tmp_path / "out")]) == 1  # no model: one message, exit 1


def test_the_report_has_one_row_per_measure():
    result = {
        "commit": "abc1234",
        "date": "2026-12-06",
        "machine": "2 cores",
        "threads": 2,
        "model": "m.gguf",
        "llama_bench": {
            "build": "0c1e570",
            "peak_rss_mib": 650.0,
            "rows": [{"test": "pp512", "depth": 0, "tokens_per_s": 206.3, "stddev": 3.0}],
        },
        "replays": [
            {
                "api": "llamacpp",
                "label": "timeout5s",
                "keystroke_p50_ms": 127.4,
                "keystroke_p95_ms": 988.8,
                "answered": 121,
                "with_a_suggestion": 0,
                "backend_p50_ms": None,
                "llama_server": {"generations_started": 64, "reused_share_p50": 0.637},
                "llama_server_peak_rss_mib": 695.8,
                "ghostcomplete_peak_rss_mib": 118.8,
            }
        ],
    }
    text = peers.report(result)
    assert "| pp512 | 0 | 206.3 | 3.0 |" in text
    assert "| http → llama-server, `api: llamacpp` timeout5s | 127.4 | 988.8 | 121 | 0 | – " in text
    assert "| 64 (0.637) | 695.8 | 118.8 |" in text
