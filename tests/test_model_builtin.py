"""The built-in model shipped in model/: it loads with no path, speaks the StarCoder FIM format,
completes code, and its training data stays disjoint from the benchmark corpus."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from ghostcomplete.backends import BackendSettings, create_backend
from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx.backend import OnnxBackend, shipped_model_folder
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.decode import Limits, decode, prefill
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.context.syntax import Scope
from ghostcomplete.model import corpus
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
FOLDER = shipped_model_folder()


@pytest.fixture(scope="module")
def builtin() -> OnnxBackend:
    return OnnxBackend(OnnxSettings(threads=1))


def prompt_for(prefix: str, suffix: str = "") -> CompletionPrompt:
    context = PackedContext(prefix, suffix, (), 0)
    text = render_fim(context, "starcoder", "python", "demo.py")
    return CompletionPrompt("python", "demo.py", context, text, TEMPLATES["starcoder"].stop)


def test_shipped_files_are_small_and_complete() -> None:
    names = {p.name for p in FOLDER.iterdir()}
    for name in ("model.onnx", "config.json", "generation_config.json", "tokenizer.tiktoken"):
        assert name in names
    size = sum((FOLDER / n).stat().st_size for n in names if n.endswith(".onnx"))
    assert size < 30 * 1024 * 1024
    card = json.loads((FOLDER / "card.json").read_text())
    assert card["held_loss"] < 5 and card["data"]


def test_kind_onnx_with_no_path_is_the_builtin_model() -> None:
    backend = create_backend(BackendSettings(kind="onnx"))
    assert isinstance(backend, OnnxBackend)
    assert backend.fim_family == "starcoder"
    assert backend.file == FOLDER / "model.onnx"
    int8 = create_backend(BackendSettings(kind="onnx", onnx=OnnxSettings(quantized=True)))
    assert isinstance(int8, OnnxBackend) and int8.file == FOLDER / "model_quantized.onnx"


def test_tokenizer_round_trips_code(builtin: OnnxBackend) -> None:
    for text in ("def f(x: int) -> str:\n\treturn f'{x!r} → ✓'\n", "\x00\r\n\t 😀"):
        ids = builtin.tokenizer.encode(text)
        assert b"".join(builtin.tokenizer.token_bytes(t) for t in ids).decode() == text
    code = (REPO / "examples" / "sample_project" / "inventory.py").read_text()
    assert len(builtin.tokenizer.encode(code)) < len(code) / 2.5  # a code tokenizer
    fim = builtin.tokenizer.encode("<fim_prefix>x<fim_suffix>y<fim_middle>")
    assert builtin.tokenizer.special["<fim_prefix>"] == fim[0]


async def test_completes_a_line(builtin: OnnxBackend) -> None:
    prefix = "import numpy as np\n\n\ndef mean(values):\n    return np."
    found = await builtin.generate(prompt_for(prefix, "\n"), GenerationLimits(candidates=3))
    assert found and all(c.text.strip() and "\n" not in c.text for c in found)


async def test_prompt_lookup_accepts_drafts_on_repetitive_code() -> None:
    builtin = OnnxBackend(OnnxSettings(threads=1))
    model = builtin.model
    rows = "".join(
        f"    registry.add('item_{i}', Item(name='item_{i}', size={i}))\n" for i in range(8)
    )
    ids = builtin.tokenizer.encode("def setup(registry):\n" + rows)
    start, _ = prefill(model, ids)
    limits = Limits(StopRule(Scope.BLOCK, "", 1000, 10_000), set(), 40)
    plain = decode(model, builtin.tokenizer, start, limits)
    drafted = decode(model, builtin.tokenizer, start, limits, None, 8)
    assert drafted.tokens == plain.tokens
    assert drafted.accepted > 10 and drafted.forwards < plain.forwards


def test_training_data_is_disjoint_from_the_benchmark() -> None:
    bench = tomllib.loads((REPO / "bench" / "corpus.toml").read_text())
    benchmarked = {p["name"].lower() for p in bench.get("pypi", []) + bench.get("npm", [])}
    ours = {p.name.lower() for p in corpus.packages()}
    assert not ours & benchmarked
    assert not ours & {"cpython", "python"}
    shipped = set(json.loads((FOLDER / "card.json").read_text())["data"])
    assert shipped == ours
