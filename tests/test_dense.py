"""Dense retrieval: the ONNX embedder, the incremental dense index, rank fusion, fallbacks."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from support import REPO

from ghostcomplete.backends import LookupBackend
from ghostcomplete.backends.onnx.embedder import EmbedderError, OnnxEmbedder
from ghostcomplete.completion.pipeline import Pipeline
from ghostcomplete.completion.settings import resolve
from ghostcomplete.context.cursor import cut_at
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.ranker.dense import DenseIndex
from ghostcomplete.ranker.index import SnippetIndex
from ghostcomplete.ranker.retrieval import bm25_snippets, reciprocal_rank_fusion

pytestmark = pytest.mark.timeout(60)

TINY_BERT = REPO / "tests" / "fixtures" / "onnx" / "tiny-bert"


# --- the embedder ---------------------------------------------------------------------------
def test_embedder_equals_transformers_mean_pooling() -> None:
    expected = json.loads((TINY_BERT / "expected.json").read_text())
    embedder = OnnxEmbedder(TINY_BERT, threads=1)
    assert embedder.model_file.name == "model.onnx"
    vectors = embedder.embed(expected["texts"])
    np.testing.assert_allclose(vectors, np.array(expected["vectors"]), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # One at a time (no padding) gives the same vectors as the padded batch.
    alone = np.concatenate([embedder.embed([text]) for text in expected["texts"]])
    np.testing.assert_allclose(alone, vectors, atol=2e-5)
    assert embedder.calls == 2 * len(expected["texts"])


def test_int8_copy_is_close() -> None:
    expected = json.loads((TINY_BERT / "expected.json").read_text())
    embedder = OnnxEmbedder(TINY_BERT, quantized=True)
    assert embedder.model_file.name == "model.int8.onnx"
    vectors = embedder.embed(expected["texts"])
    cosines = (vectors * np.array(expected["vectors"])).sum(axis=1)
    assert cosines.min() > 0.9


def test_queries_keep_their_last_tokens() -> None:
    embedder = OnnxEmbedder(TINY_BERT)
    long_head = "class Inventory:\n" * 200
    chunk_view = embedder.embed([long_head + "x = 1"])
    query_view = embedder.embed([long_head + "x = 1"], query=True)
    assert np.allclose(chunk_view, embedder.embed([long_head]))  # the head decides
    assert not np.allclose(query_view, embedder.embed([long_head], query=True), atol=1e-4)


def test_missing_model_and_missing_tokenizers_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EmbedderError, match=r"no embedding model at .*model\.onnx is missing"):
        OnnxEmbedder(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    (tmp_path / "tokenizer.json").write_text((TINY_BERT / "tokenizer.json").read_text())
    with pytest.raises(EmbedderError, match="cannot load the embedding model") as broken:
        OnnxEmbedder(tmp_path)
    assert "\n" not in str(broken.value)
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(EmbedderError, match="'tokenizers' package is not installed"):
        OnnxEmbedder(TINY_BERT)


# --- the dense index ------------------------------------------------------------------------
class CountingEmbedder:
    """Vectors from text hashes (a fake model), counting the texts it is given."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.queries: list[str] = []

    def __call__(self, texts: Sequence[str], query: bool) -> np.ndarray:
        (self.queries if query else self.texts).extend(texts)
        rows = []
        for text in texts:
            seed = int(hashlib.md5(text.encode()).hexdigest()[:8], 16)
            row = np.random.default_rng(seed).normal(size=8).astype(np.float32)
            rows.append(row / np.linalg.norm(row))
        return np.array(rows)


def functions(*names: str) -> str:
    return "\n\n".join(
        f"def {name}(value):\n    return value + {i}\n" for i, name in enumerate(names)
    )


def test_only_changed_chunks_are_embedded_and_files_leaving_drop_theirs() -> None:
    fake = CountingEmbedder()
    index = SnippetIndex()
    dense = DenseIndex(fake)
    index.listener = dense.update
    a = DocumentSnapshot("file:///w/a.py", "python", functions("alpha", "beta", "gamma"), 1)
    b = DocumentSnapshot("file:///w/b.py", "python", functions("delta", "epsilon"), 1)
    index.ensure(a)
    index.ensure(b)
    assert dense.wait_idle(10)
    assert len(fake.texts) == 5
    assert dense.vectors == 5
    # The same text again: nothing to do. One function edited: one chunk embedded.
    index.ensure(a)
    edited = functions("alpha", "beta", "gamma").replace("value + 1", "value * 2")
    index.ensure(DocumentSnapshot(a.uri, "python", edited, 2))
    assert dense.wait_idle(10)
    assert len(fake.texts) == 6
    assert "value * 2" in fake.texts[-1]
    assert dense.vectors == 5
    # A file leaving the index takes its vectors along; coming back costs no model call.
    index.remove(b.uri)
    assert dense.vectors == 3
    assert dense.search(fake(["delta"], True)[0], [b.uri], 4) == []
    index.ensure(b)
    assert dense.wait_idle(10)
    assert len(fake.texts) == 6
    assert dense.vectors == 5
    assert dense.embedded == 6
    dense.close()


def test_search_is_cosine_over_the_allowed_files() -> None:
    fake = CountingEmbedder()
    index = SnippetIndex()
    dense = DenseIndex(fake)
    index.listener = dense.update
    a = DocumentSnapshot("file:///w/a.py", "python", functions("alpha", "beta"), 1)
    b = DocumentSnapshot("file:///w/b.py", "python", functions("gamma"), 1)
    index.ensure(a)
    index.ensure(b)
    assert dense.wait_idle(10)
    target = index.chunks_of(a.uri)[1]
    query = fake([target.text], False)[0]
    found = dense.search(query, [a.uri, b.uri], 3)
    assert found[0][1] == target
    assert found[0][0] == pytest.approx(1.0, abs=1e-5)
    assert [score for score, _ in found] == sorted((score for score, _ in found), reverse=True)
    assert {chunk.uri for _, chunk in dense.search(query, [b.uri], 3)} == {b.uri}
    dense.close()


def test_a_model_that_fails_in_the_worker_stops_dense_retrieval_once() -> None:
    told: list[str] = []

    def broken(texts: Sequence[str], query: bool) -> np.ndarray:
        raise RuntimeError("ONNXRuntimeError: bad input")

    index = SnippetIndex()
    dense = DenseIndex(broken, on_problem=told.append)
    index.listener = dense.update
    index.ensure(DocumentSnapshot("file:///w/a.py", "python", functions("alpha"), 1))
    assert dense.wait_idle(10)
    assert dense.problem is not None and "bad input" in dense.problem
    assert told == [dense.problem]
    assert dense.query_vector("alpha") is None


# --- fusion ---------------------------------------------------------------------------------
def test_reciprocal_rank_fusion_orders_by_summed_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]])
    assert [item for _, item in fused] == ["a", "c", "b", "d"]
    assert fused[0][0] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][0] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2][0] == pytest.approx(1 / 62)
    assert fused[3][0] == pytest.approx(1 / 63)
    # Ties keep the order of first appearance; a larger k flattens the ranks.
    assert [i for _, i in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]
    assert reciprocal_rank_fusion([["x"]], k=0)[0][0] == 1.0


def test_fused_snippets_add_what_only_the_embeddings_find() -> None:
    """A chunk sharing no identifier with the query cannot come from BM25; the dense ranking
    brings it in, and the hygiene rules still apply (two chunks per file at most)."""
    words = functions("load_rows", "parse_header", "write_rows")
    other = "def unrelated_thing(x):\n    return x\n"
    index = SnippetIndex()
    fake = CountingEmbedder()
    dense = DenseIndex(fake)
    index.listener = dense.update
    index.ensure(DocumentSnapshot("file:///w/a.py", "python", words, 1))
    index.ensure(DocumentSnapshot("file:///w/b.py", "python", other, 1))
    assert dense.wait_idle(10)
    prefix = "rows = load_rows(path)\nheader = parse_header(rows)\n"
    uris = ["file:///w/a.py", "file:///w/b.py"]
    plain = bm25_snippets(prefix, "", index, uris, 4)
    assert all(s.uri.endswith("a.py") for s in plain)
    # The fake model puts the query next to b.py's chunk: make it so.
    query_text = "\n".join(prefix.split("\n")[-20:]) + "\n"
    other_vector = fake([other.rstrip("\n")], False)[0]
    dense._queries[query_text] = other_vector
    fused = bm25_snippets(prefix, "", index, uris, 4, dense=dense)
    assert any(s.uri.endswith("b.py") for s in fused)
    assert sum(s.uri.endswith("a.py") for s in fused) <= 2
    assert fused[0].score == pytest.approx(max(s.score for s in fused))
    dense.close()


# --- the pipeline -------------------------------------------------------------------------------
def pipeline_with(dense: dict[str, object]) -> Pipeline:
    settings, errors = resolve({"context": {"dense": dense}})
    assert errors == []
    return Pipeline(LookupBackend(), settings)


def test_missing_model_means_bm25_only_with_one_message(tmp_path: Path) -> None:
    told: list[str] = []
    settings, _ = resolve()
    pipeline = Pipeline(LookupBackend(), settings)
    pipeline.on_dense_problem = told.append
    broken, errors = resolve({"context": {"dense": {"enabled": True, "path": str(tmp_path)}}})
    assert errors == []
    pipeline.configure(broken)
    assert pipeline.dense is None
    assert pipeline.dense_problem is not None
    assert pipeline.dense_problem.startswith("dense retrieval is off (BM25 only): no embedding")
    assert len(told) == 1
    pipeline.configure(broken)  # the same settings again: no second message
    assert len(told) == 1
    neighbour = DocumentSnapshot("file:///w/b.py", "python", functions("load_rows", "other"), 1)
    document = DocumentSnapshot("file:///w/a.py", "python", "rows = load_rows(", 1)
    cursor = cut_at(document, 0, len(document.text), max_bytes=1_000_000)
    snippets = pipeline.choose_snippets(cursor, [neighbour])  # type: ignore[arg-type]
    assert snippets and "load_rows" in snippets[0].text


def test_pipeline_embeds_the_index_it_already_has_and_fuses() -> None:
    pipeline = pipeline_with({"enabled": False})
    neighbour = DocumentSnapshot("file:///w/b.py", "python", functions("load_rows", "other"), 1)
    pipeline.index_for_context(neighbour)
    on, _ = resolve({"context": {"dense": {"enabled": True, "path": str(TINY_BERT)}}})
    pipeline.configure(on)
    assert pipeline.dense is not None and pipeline.dense_problem is None
    assert pipeline.dense.wait_idle(20)
    assert pipeline.dense.vectors == 2
    document = DocumentSnapshot("file:///w/a.py", "python", "rows = load_rows(", 1)
    cursor = cut_at(document, 0, len(document.text), max_bytes=1_000_000)
    snippets = pipeline.choose_snippets(cursor, [neighbour])  # type: ignore[arg-type]
    assert {s.text.split("(")[0] for s in snippets} == {"def load_rows", "def other"}
    pipeline.configure(resolve()[0])  # off again: the index no longer follows
    assert pipeline.dense is None and pipeline.index.listener is None


def test_dense_settings_parse_and_check() -> None:
    settings, errors = resolve(
        {"context": {"dense": {"enabled": True, "path": "/m", "threads": 2, "quantized": True}}}
    )
    assert errors == []
    dense = settings.context.dense
    assert (dense.enabled, dense.path, dense.threads, dense.quantized) == (True, "/m", 2, True)
    _, errors = resolve({"context": {"dense": {"threads": 0, "enabled": "yes"}}})
    assert len(errors) == 2
