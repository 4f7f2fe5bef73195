"""The soak benchmark's quick run (bench/soak.py) against the real server: thousands of
completions with realistic editing, then a burst of 1,000 requests in one second."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_quick_soak_holds_memory_latency_and_the_burst(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "ghostcomplete.bench.soak", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=55,
    )
    assert out.exists(), run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert result["errors"] == 0, run.stdout
    assert result["completions"] == 1500 and len(result["windows"]) == 9
    burst = result["burst"]
    assert burst["answered"] == burst["requests"] == 1000, run.stdout
    # The product's goal is 1 s: bench/soak.py judges it and bench/RESULTS.md holds the full
    # run's figure. Here the burst, its sender and the rest of the test run share two cores,
    # and a loaded CI machine has put the last answer past 1.5 s. Superseded requests dropped
    # rather than queued is checked by the backend-call count; the time bound catches a stall.
    assert burst["last_answered_ms"] < 5000, run.stdout
    assert burst["backend_calls"] < burst["requests"] / 4, run.stdout  # superseded, not queued
    # A short run's warm-up is short too: looser than the full run's 10 %.
    assert result["rss_growth"] < 0.25, run.stdout
    assert "p99 overhead stable" in run.stdout
