"""The folder bench/genai_peer.py prepares for onnxruntime-genai, on a tiny qwen2 decoder
written at test time. genai itself is not installed here (its wheel needs the CPU
onnxruntime package, which would replace onnxruntime-gpu), so its ``measure`` is not run:
these tests check what genai would be given, with plain onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tiny_decoders import qwen2_config, write_qwen2_folder

from ghostcomplete.bench import genai_peer

pytestmark = pytest.mark.timeout(60)

CONFIG = qwen2_config(vocab_size=256, max_positions=256)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("int4")
    write_qwen2_folder(folder, CONFIG, "int4", seed=3)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    return folder


def _last_logits(model: Path, ids: list[int], kept: bool) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {
        "input_ids": np.array([ids], np.int64),
        "attention_mask": np.ones((1, len(ids)), np.int64),
    }
    for entry in session.get_inputs():
        if entry.name.startswith("past_key_values."):
            feeds[entry.name] = np.zeros((1, CONFIG.num_kv_heads, 0, CONFIG.head_dim), np.float32)
    if kept:
        feeds[genai_peer.KEPT_INPUT] = np.array([1], np.int64)
    logits = session.run(["logits"], feeds)[0]
    assert logits.shape == (1, 1, CONFIG.vocab_size)
    return logits[0, -1]


def test_prepared_graph_computes_what_the_imported_one_does(imported: Path, tmp_path: Path):
    out = genai_peer.prepare(imported, tmp_path / "genai")
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    assert genai_peer.KEPT_INPUT not in {i.name for i in graph.input}
    logits = next(o for o in graph.output if o.name == "logits")
    assert logits.type.tensor_type.shape.dim[1].dim_value == 1
    # The weights are linked, not rewritten: the same file.
    assert (out / "model.onnx.data").samefile(imported / "model.onnx.data")
    ids = [5, 17, 42, 99, 3, 200, 8]
    np.testing.assert_allclose(
        _last_logits(out / "model.onnx", ids, kept=False),
        _last_logits(imported / "model.onnx", ids, kept=True),
        rtol=1e-5,
        atol=1e-5,
    )


def test_genai_config_describes_the_graph(imported: Path, tmp_path: Path):
    out = genai_peer.prepare(imported, tmp_path / "genai", threads=3)
    described = json.loads((out / "genai_config.json").read_text())
    config = json.loads((imported / "config.json").read_text())
    decoder = described["model"]["decoder"]
    assert decoder["num_hidden_layers"] == CONFIG.num_layers
    assert decoder["num_key_value_heads"] == CONFIG.num_kv_heads
    assert decoder["head_size"] == CONFIG.head_dim
    assert decoder["session_options"]["intra_op_num_threads"] == 3
    assert described["model"]["vocab_size"] == CONFIG.vocab_size
    assert described["model"]["type"] == config["model_type"] == "qwen2"
    assert described["model"]["eos_token_id"] == 2
    assert described["search"]["past_present_share_buffer"] is True
    names = {
        i.name for i in onnx.load(str(out / "model.onnx"), load_external_data=False).graph.input
    }
    inputs = decoder["inputs"]
    assert {inputs["input_ids"], inputs["attention_mask"]} <= names
    assert inputs["past_key_names"] % 0 in names and inputs["past_value_names"] % 0 in names


def test_a_folder_that_is_not_an_import_is_refused(tmp_path: Path):
    with pytest.raises(SystemExit, match="not an imported graph"):
        genai_peer.prepare(Path(__file__).parent / "fixtures" / "onnx" / "tiny-llama", tmp_path)
