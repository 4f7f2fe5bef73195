"""`bench.tokenizer_check`: the engine's reading of a model's tokenizer against the `tokenizers`
package, over a directory of files (offline; the tokenizer written from a tiny GGUF with
qwen2's NFC normalizer, the shape of Qwen2.5-Coder's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_decoders import gguf_tokenizer_folder

from ghostcomplete.backends.onnx.tokenizer import TiktokenTokenizer, load_tokenizer
from ghostcomplete.bench import tokenizer_check


@pytest.fixture
def qwen_folder(tmp_path: Path) -> Path:
    return gguf_tokenizer_folder(tmp_path)


def test_the_check_finds_the_same_ids_over_a_directory(
    qwen_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("def cafe\u0301():\n    return 'A\u030a'\n" * 40)
    (repo / "b.js").write_text("const x = 1;\n")
    code = tokenizer_check.main([str(qwen_folder), "--repo", str(repo), "--chars", "100"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "TiktokenTokenizer" in out
    assert "| 2 | 0 | 1 |" in out  # two files, none differing, one long enough to time


def test_the_check_names_the_files_whose_ids_differ(qwen_folder: Path) -> None:
    engine = load_tokenizer(qwen_folder)
    assert isinstance(engine, TiktokenTokenizer)
    texts = [("plain.py", "x = 1\n"), ("decomposed.py", "name = 'Jose\u0301'\n")]
    # Leaving the normalizer out changes the ids of decomposed text only.
    result = tokenizer_check.compare(texts, engine.encoding.encode_ordinary, engine.encode, 3)
    assert result["files"] == 2 and result["differing"] == ["decomposed.py"]
    assert result["timed"] == 2 and result["engine_p50_ms"] is not None
