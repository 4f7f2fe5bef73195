"""A sentence embedder on onnxruntime: WordPiece with `tokenizers`, BERT, mean pooling.

The model folder is what ``python -m ghostcomplete.model.embedder`` writes: ``model.onnx``
(and its int8 copy ``model.int8.onnx``), taking ``input_ids``, ``attention_mask`` and
``token_type_ids`` and returning ``last_hidden_state``, plus the ``tokenizer.json`` of the
source model. A text's vector is the mean of its tokens' last hidden states over the
attention mask, L2-normalized: what sentence-transformers computes for all-MiniLM-L6-v2.
No torch here; everything is synchronous (callers pick the thread).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("ghostcomplete.dense")

MODEL_FILE = "model.onnx"
QUANTIZED_FILE = "model.int8.onnx"
# Tokens per text: chunks keep their head (signature, docstring), queries their tail (the
# lines just before the cursor). all-MiniLM-L6-v2 was trained on 128-token texts.
MAX_TOKENS = 128
BATCH = 16


class EmbedderError(Exception):
    """The embedder cannot be built or run; the message says why, in one line."""


def default_embedder_path() -> Path:
    """$XDG_DATA_HOME/ghostcomplete/embedder (~/.local/share when XDG_DATA_HOME is unset)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "ghostcomplete" / "embedder"


def model_file_in(folder: Path, quantized: bool) -> Path:
    """The ONNX file to load: the int8 copy when asked for and present, else model.onnx."""
    if quantized and (folder / QUANTIZED_FILE).is_file():
        return folder / QUANTIZED_FILE
    return folder / MODEL_FILE


class OnnxEmbedder:
    """Texts to unit vectors. Thread-safe: onnxruntime sessions may run concurrently."""

    def __init__(
        self,
        folder: Path,
        threads: int = 1,
        quantized: bool = False,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as error:
            raise EmbedderError(
                "the 'tokenizers' package is not installed "
                "(pip install 'ghostcomplete[tokenizers]')"
            ) from error
        import onnxruntime as ort

        from ghostcomplete.backends.onnx.engine import session_options

        model = model_file_in(folder, quantized)
        tokenizer_file = folder / "tokenizer.json"
        for needed in (model, tokenizer_file):
            if not needed.is_file():
                raise EmbedderError(
                    f"no embedding model at {folder} ({needed.name} is missing); build it with "
                    "python -m ghostcomplete.model.embedder --out FOLDER"
                )
        started = time.monotonic()
        try:
            self._query = Tokenizer.from_file(str(tokenizer_file))
            self._chunk = Tokenizer.from_file(str(tokenizer_file))
            self.session = ort.InferenceSession(
                str(model),
                sess_options=session_options(threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as error:  # tokenizers and onnxruntime raise their own types
            first_line = str(error).strip().split("\n")[0]
            raise EmbedderError(f"cannot load the embedding model {model}: {first_line}") from error
        inputs = {i.name for i in self.session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= inputs:
            raise EmbedderError(f"{model} is not a BERT encoder (inputs: {sorted(inputs)})")
        self._token_types = "token_type_ids" in inputs
        pad = self._chunk.token_to_id("[PAD]")
        for tokenizer, direction in ((self._chunk, "right"), (self._query, "left")):
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_tokens, direction=direction)
            tokenizer.enable_padding(pad_id=pad or 0, pad_token="[PAD]")
        self.model_file = model
        self.dimension = int(self.session.get_outputs()[0].shape[-1] or 0)
        self.calls = 0  # texts embedded (the tests count them)
        log.info("dense: %s loaded in %.0f ms", model, (time.monotonic() - started) * 1000)

    def embed(self, texts: Sequence[str], query: bool = False) -> np.ndarray:
        """One L2-normalized float32 row per text (queries keep their last tokens)."""
        tokenizer = self._query if query else self._chunk
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), BATCH):
            batch = list(texts[start : start + BATCH])
            encodings = tokenizer.encode_batch(batch)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
            if self._token_types:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            rows.append(mean_pool(hidden, mask))
            self.calls += len(batch)
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(rows)


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token states over the attention mask, then L2-normalized rows."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
