"""The GPU check (bench/device/check.sh) without a GPU: its ``--provider cpu --quick`` run end
to end (output, results file, the correctness comparison), the parts that carry the
onnxruntime-gpu wheel (cut, received in any order, checked, joined, installed), and the
synthetic tokenizer its random-weight models use."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ghostcomplete.backends.onnx.tokenizer import HfTokenizer, load_tokenizer, tiktoken_from_hf
from ghostcomplete.bench import device_parts
from ghostcomplete.bench.device_check import RESULT_FILE, summary, table
from ghostcomplete.bench.device_correctness import first_difference
from ghostcomplete.bench.synthetic_tokenizer import SPECIAL, tokenizer_spec, write_tokenizer

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
CHECK = REPO / "bench" / "device" / "check.sh"
CODE = (REPO / "bench" / "latency.py").read_text() + (REPO / "bench" / "corpus.py").read_text()


def check_sh(*arguments: str, work: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHON": sys.executable, "GHOSTCOMPLETE_DEVICE_WORK": str(work)}
    environment.pop("OUT", None)
    return subprocess.run(
        ["bash", str(CHECK), *arguments],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=55,
    )


def test_quick_cpu_run_reports_each_step_the_table_and_the_correctness_line(tmp_path) -> None:
    out = tmp_path / "out"
    done = check_sh(
        "run", "--provider", "cpu", "--quick", "--out", str(out), "--threads", "1",
        work=tmp_path / "work",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / RESULT_FILE).read_text())
    steps = {step["step"]: step for step in data["steps"]}
    assert list(steps) == [
        "environment",
        "correctness",
        "tiny-qwen2 fp32: placement and agreement",
        "tiny-qwen2 fp32 engine",
        "tiny-qwen2 fp32 server",
    ]
    assert not [s for s in steps.values() if "error" in s or "skipped" in s]
    check = steps["correctness"]
    assert check["passed"] and check["tokens_equal_cpu"] and check["cpu_cache_equals_no_cache"]
    assert check["drafts_equal_plain"] and check["max_logit_difference_relative"] == 0.0
    placed = steps["tiny-qwen2 fp32: placement and agreement"]
    assert "GroupQueryAttention" in placed["ops_by_provider"]["CPU"]
    assert placed["agree_with_cpu"] == "32/32"
    engine = steps["tiny-qwen2 fp32 engine"]
    assert engine["provider"] == "CPUExecutionProvider" and engine["runs"] == 3
    assert 0 < engine["ttft_p50_ms"] < engine["p50_ms"] and engine["decode_tokens_per_s"] > 0
    server = steps["tiny-qwen2 fp32 server"]
    assert server["recent_files"] == 20 and server["requests"] == 3
    assert server["prompt_tokens_p50"] > 50 and server["client_p50_ms"] > 0
    lines = done.stdout.splitlines()
    assert "| tiny-qwen2 | fp32 | engine | CPUExecutionProvider | 200+16 |" in done.stdout
    assert any(line.startswith("| tiny-qwen2 | fp32 | server, 20 files open |") for line in lines)
    assert any(line.startswith("correctness (tiny-qwen2 fp32") and "PASS" in line for line in lines)
    assert lines[-2].startswith("goal: qwen2.5-coder-0.5b p50 ≤ 60 ms for 2,000 + 16 tokens")


def test_summary_says_fail_and_where_tokens_differ() -> None:
    assert first_difference([1, 2, 3], [1, 2, 3]) is None
    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2
    plan = {"prompt_tokens": 2000, "new_tokens": 16, "precisions": ["fp16"], "provider": "cuda"}
    failed = {
        "step": "correctness",
        "model": "tiny-qwen2 fp32",
        "provider": "CUDAExecutionProvider",
        "prompt_tokens": 48,
        "new_tokens": 32,
        "tokens_equal_cpu": False,
        "cpu_cache_equals_no_cache": True,
        "drafts_equal_plain": True,
        "max_logit_difference_relative": 0.25,
        "passed": False,
    }
    engine = {"step": "qwen2.5-coder-0.5b fp16 engine", "provider": "CUDAExecutionProvider"}
    engine.update(ttft_p50_ms=30.0, decode_tokens_per_s=500.0, p50_ms=61.5, p95_ms=70.0)
    broken = {"step": "qwen2.5-coder-1.5b fp16 engine", "error": "RuntimeError: out of memory"}
    data = {"plan": plan, "steps": [failed, engine, broken]}
    correctness, goal = summary(data)
    assert "FAIL" in correctness and "tokens equal: False" in correctness
    assert goal.endswith("61.5 ms, NOT met")
    rows = table(data).splitlines()
    assert rows[2].endswith("| 2000+16 | 30.0 | 500.0 | 61.5 | 70.0 |")
    assert "RuntimeError: out of memory" in rows[3]


def test_parts_are_received_in_any_order_checked_and_joined(tmp_path) -> None:
    wheel = tmp_path / "big-1.0-py3-none-any.whl"
    wheel.write_bytes(os.urandom(10_000))
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = device_parts.split(wheel, folder, 4000, 1500)
    assert [p["bytes"] for p in parts] == [1500, 4000, 4000, 500]
    digest = device_parts.sha256_of(wheel)
    manifest = {"wheel": {"file": wheel.name, "sha256": digest}, "parts": parts, "wheels": []}
    store = tmp_path / "store"
    left = device_parts.receive(manifest, folder / "part-3", store)
    assert left == ["part-1", "part-2", "part-4"]
    with pytest.raises(device_parts.PartsError, match="still missing: part-1, part-2, part-4"):
        device_parts.assemble(manifest, store, tmp_path / "joined", {wheel.name: digest})
    damaged = tmp_path / "damaged" / "part-1"
    damaged.parent.mkdir()
    damaged.write_bytes(b"x" * 1500)
    with pytest.raises(device_parts.PartsError, match="not the part"):
        device_parts.receive(manifest, damaged, store)
    for name in ("part-4", "part-1", "part-2", "part-1"):
        left = device_parts.receive(manifest, folder / name, store)
    assert left == []
    with pytest.raises(device_parts.PartsError, match="not the pinned one"):
        device_parts.assemble(manifest, store, tmp_path / "joined", {wheel.name: "0" * 64})
    joined = device_parts.assemble(manifest, store, tmp_path / "joined", {wheel.name: digest})
    assert joined.read_bytes() == wheel.read_bytes()
    (store / "part-2").write_bytes(b"y" * 4000)  # same size, other bytes: the whole sum fails
    with pytest.raises(device_parts.PartsError, match="has sha256"):
        device_parts.assemble(manifest, store, tmp_path / "again", {wheel.name: digest})


def make_wheel(folder: Path, name: str, size: int) -> Path:
    """A wheel of one module ``name`` (with ``size`` bytes of padding) pip can install."""
    path = folder / f"{name}-1.0-py3-none-any.whl"
    files = {
        f"{name}.py": f"VALUE = {name!r}\nPAD = {os.urandom(size).hex()!r}\n",
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{name}-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{n},sha256=,{len(t)}" for n, t in files.items()]
    files[f"{name}-1.0.dist-info/RECORD"] = "\n".join([*record, f"{name}-1.0.dist-info/RECORD,,"])
    with zipfile.ZipFile(path, "w") as archive:
        for entry, text in files.items():
            archive.writestr(entry, text)
    return path


def test_check_sh_receives_parts_then_installs_the_wheels(tmp_path) -> None:
    carried = tmp_path / "repo" / ".device"
    (carried / "wheels").mkdir(parents=True)
    big = make_wheel(tmp_path, "bigpart", 6000)
    small = make_wheel(carried / "wheels", "smallone", 10)
    parts = device_parts.split(big, carried, 5000, 4000)
    sums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (big, small)}
    manifest = {
        "wheel": {"file": big.name, "sha256": sums[big.name]},
        "parts": parts,
        "wheels": [{"file": small.name, "sha256": sums[small.name]}],
    }
    (carried / "manifest.json").write_text(json.dumps(manifest))
    pins = tmp_path / "pins.txt"
    pins.write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    env = {"GHOSTCOMPLETE_DEVICE_PARTS": str(carried), "GHOSTCOMPLETE_DEVICE_PINS": str(pins)}
    work = tmp_path / "work"
    assert len(parts) == 3
    second = check_sh("receive", "2", work=work, **env)
    assert second.returncode == 0 and "still missing: part-1 part-3" in second.stdout
    # Later calls do not carry the small wheels: part 2's call kept them.
    (carried / "wheels" / small.name).unlink()
    first = check_sh("receive", "1", work=work, **env)
    assert "still missing: part-3" in first.stdout
    last = check_sh("receive", "3", work=work, **env)
    assert last.returncode == 0, last.stderr
    assert "installed into" in last.stdout
    site = work / "site"
    found = subprocess.run(
        [sys.executable, "-c", "import bigpart, smallone; print(bigpart.VALUE, smallone.VALUE)"],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert found.stdout.split() == ["bigpart", "smallone"]
    bad = check_sh("receive", "9", work=tmp_path / "other", **env)
    assert bad.returncode != 0 and "part-9" in bad.stderr


def test_travelling_bytes_counts_tracked_and_untracked_files_not_ignored(tmp_path) -> None:
    def git(*arguments: str) -> None:
        subprocess.run(["git", *arguments], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "tracked.txt").write_bytes(b"a" * 1000)
    git("add", ".gitignore", "tracked.txt")
    (tmp_path / "untracked.txt").write_bytes(b"b" * 300)
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "big").write_bytes(b"c" * 5000)
    assert device_parts.travelling_bytes(tmp_path) == 1000 + 300 + len("ignored/\n")


def test_synthetic_tokenizer_is_byte_level_bpe_of_the_asked_size(tmp_path) -> None:
    spec = tokenizer_spec([CODE], regular=3000)
    assert len(spec["model"]["vocab"]) == 3000
    specials = {t["content"]: t["id"] for t in spec["added_tokens"]}
    assert specials["<|fim_prefix|>"] == 3000 + SPECIAL.index("<|fim_prefix|>")
    assert spec["normalizer"] == {"type": "NFC"}  # as Qwen2's
    encoding = tiktoken_from_hf(spec, "synthetic", normalized=True)
    assert encoding is not None  # the fast path real Qwen tokenizers take
    sample = (REPO / "bench" / "latency.py").read_text()[:4000]
    ids = encoding.encode(sample)
    assert len(sample) / len(ids) > 2.5  # learned from the same kind of text
    assert encoding.decode(ids) == sample
    assert write_tokenizer(tmp_path, [CODE], regular=3000) == 3000 + len(SPECIAL)
    loaded = load_tokenizer(tmp_path)
    assert loaded.encode("<|fim_middle|>") == [specials["<|fim_middle|>"]]
    # A valid tokenizer.json for the `tokenizers` package too, with the same text back.
    hf = HfTokenizer(tmp_path / "tokenizer.json")
    assert b"".join(hf.token_bytes(t) for t in hf.encode(sample)).decode() == sample
