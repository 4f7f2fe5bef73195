"""``backend.kind: "auto"`` picks the hybrid with an installed model whose measured speed fits
completion.timeoutMs, else the lookup; the models are the built-in one installed under a name,
with a speed written into its manifest."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import copy_of_builtin_model, server_executable

from ghostcomplete.backends import BackendSettings, LookupBackend, choose_backend, create_backend
from ghostcomplete.backends.hybrid.auto import budget_ms, prompt_tokens_per_s, request_ms
from ghostcomplete.backends.hybrid.backend import HybridBackend
from ghostcomplete.backends.onnx.installed import (
    InstalledModel,
    machine_fingerprint,
    models_dir,
    write_manifest,
)

pytestmark = pytest.mark.timeout(60)

FAST = {"prompt_tokens_per_s": 2000.0, "decode_tokens_per_s": 200.0}  # ~208 ms
SLOW = {"prompt_tokens_per_s": 200.0, "decode_tokens_per_s": 20.0}  # ~2,080 ms


def install(
    root: Path,
    name: str,
    speed: dict[str, Any] | None,
    size: int = 1000,
    config: dict[str, object] | None = None,
) -> Path:
    """The built-in model installed as ``name``, its config.json updated with ``config``."""
    folder = root / name
    copy_of_builtin_model(folder)
    if config is not None:
        found = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**found, **config}))
    model = InstalledModel(name, "test", "gpt2", "fp32", size_bytes=size, speed=speed)
    write_manifest(folder, model)
    return folder


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(root))
    return root


def test_tests_see_no_installed_model():
    # conftest.py points every test at an empty models directory.
    assert list(models_dir().iterdir()) == []
    chosen = choose_backend(BackendSettings())
    assert chosen.settings.kind == "lookup"
    assert chosen.summary.startswith("auto: lookup (no installed model in ")


async def test_nothing_installed_is_the_lookup(models: Path):
    backend = create_backend(BackendSettings())
    assert isinstance(backend, LookupBackend)
    await backend.aclose()


async def test_a_fast_model_is_picked_and_answers_in_the_hybrid(models: Path):
    install(models, "quick", FAST)
    chosen = choose_backend(BackendSettings(), timeout_ms=1000)
    assert chosen.settings.kind == "hybrid"
    assert chosen.settings.hybrid.model == "onnx" and chosen.settings.onnx.model == "quick"
    assert "onnx model 'quick'" in chosen.summary and "~208 ms" in chosen.summary
    backend = create_backend(BackendSettings(), timeout_ms=1000)
    try:
        assert isinstance(backend, HybridBackend) and backend.model is not None
        assert backend.description == "hybrid: lookup + onnx model 'quick'"
    finally:
        await backend.aclose()


def test_a_slow_model_is_not_picked_until_the_deadline_allows_it(models: Path):
    install(models, "sluggish", SLOW)
    chosen = choose_backend(BackendSettings(), timeout_ms=1000)
    assert chosen.settings.kind == "lookup"
    assert "too slow for completion.timeoutMs 1000: sluggish ~2080 ms" in chosen.summary
    # A user who accepts a 3 s wait gets it.
    assert choose_backend(BackendSettings(), timeout_ms=3000).settings.kind == "hybrid"


def test_a_model_without_a_measured_speed_is_never_picked(models: Path):
    install(models, "unmeasured", None)
    chosen = choose_backend(BackendSettings(), timeout_ms=60_000)
    assert chosen.settings.kind == "lookup"
    assert "ghostcomplete model measure NAME`" in chosen.summary


def test_a_speed_measured_on_another_machine_does_not_count(models: Path):
    # A models directory copied from a fast machine: its speeds say nothing about this one.
    elsewhere = {**FAST, "machine": {**machine_fingerprint(), "cpu": "another machine's CPU"}}
    install(models, "copied", elsewhere)
    chosen = choose_backend(BackendSettings(), timeout_ms=60_000)
    assert chosen.settings.kind == "lookup"
    assert "speed measured on another machine: copied" in chosen.summary
    install(models, "measured-here", {**FAST, "machine": machine_fingerprint()})
    chosen = choose_backend(BackendSettings(), timeout_ms=60_000)
    assert chosen.settings.onnx.model == "measured-here"


def test_the_biggest_model_that_fits_wins(models: Path):
    # Weights are counted from config.json as the onnx backend counts them; the size on disk
    # (here the larger for the smaller model) only where config.json has no size.
    install(models, "small-fast", FAST, size=4000)
    install(models, "big-fast", FAST, size=1000, config={"num_hidden_layers": 8})
    install(models, "huge-slow", SLOW, size=40_000, config={"num_hidden_layers": 32})
    chosen = choose_backend(BackendSettings(), timeout_ms=1000)
    assert chosen.settings.onnx.model == "big-fast"


def test_without_a_size_in_config_json_the_size_on_disk_counts(models: Path):
    unsized = {"hidden_size": None, "vocab_size": None}
    install(models, "small-fast", FAST, size=1000, config=unsized)
    install(models, "big-fast", FAST, size=4000, config=unsized)
    assert choose_backend(BackendSettings(), timeout_ms=1000).settings.onnx.model == "big-fast"
    (models / "big-fast" / "config.json").write_text("{not json")
    assert choose_backend(BackendSettings(), timeout_ms=1000).settings.onnx.model == "big-fast"


def test_a_chosen_kind_is_left_alone(models: Path):
    install(models, "quick", FAST)
    chosen = choose_backend(BackendSettings(kind="lookup"))
    assert chosen.settings.kind == "lookup" and chosen.summary == "lookup"


def test_the_budget_rule():
    assert budget_ms(1000) == 800
    assert request_ms(None) is None and request_ms({}) is None
    assert request_ms({"decode_tokens_per_s": 50.0}) is None  # no prompt speed
    # 256 new prompt tokens and a 16-token line.
    assert request_ms(FAST) == pytest.approx(256 / 2000 * 1000 + 16 / 200 * 1000)
    # A measured keystroke latency wins over the estimate.
    assert request_ms({**SLOW, "keystroke_p95_ms": 300.0}) == 300.0
    # The prompt speed from the longest prefill measured (what `model measure` prints).
    speed = {"prefill_64_ms": 100.0, "prefill_448_ms": 896.0, "decode_tokens_per_s": 40.0}
    assert prompt_tokens_per_s(speed) == pytest.approx(500.0)


def test_complete_says_what_auto_chose_and_who_wrote_the_suggestion(tmp_path: Path):
    target = tmp_path / "verbs.py"
    text = "".join(
        f"def {verb}(client, url):\n    return client.send(url, timeout=5)\n\n\n"
        for verb in ("get", "put", "post")
    )
    target.write_text(text + "def delete(client, url):\n    return client.send(")
    line = text.count("\n") + 2
    location = f"{target}:{line}:{len('    return client.send(') + 1}"
    done = subprocess.run(
        [server_executable(), "complete", "-v", location],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "url, timeout=5)\n"
    assert "ghostcomplete: backend: auto: lookup (no installed model in " in done.stderr
    assert "ghostcomplete: suggestion 1 from lookup:prefix" in done.stderr
