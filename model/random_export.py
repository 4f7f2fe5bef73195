"""A random-weight decoder of a real model's shape, exported the way a user exports a model.

    python -m ghostcomplete.model.random_export --shape qwen2.5-0.5b --out FOLDER

Builds the ``transformers`` model from the shape's configuration (no download: the numbers
are below), with random weights, and exports it with optimum (``text-generation-with-past``,
the Hugging Face layout ``backend.onnx.path`` reads). Random weights are enough to time the
engine (``python -m ghostcomplete.model.measure --path FOLDER --request 2000:16``): the work
per token does not depend on the values. There is no tokenizer: ``--request`` feeds token ids.

Needs the ``train`` extra (torch, transformers, optimum-onnx); the server never imports this.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

# The published configurations' numbers (config.json of each model), not their weights.
SHAPES: dict[str, dict[str, Any]] = {
    # Qwen/Qwen2.5-Coder-0.5B: 494 M parameters, 151,936 tokens.
    "qwen2.5-0.5b": {
        "architecture": "qwen2",
        "vocab_size": 151936,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
}


def export(shape: str, out: Path, seed: int = 0) -> Path:
    import torch
    from optimum.exporters.onnx import main_export
    from transformers import Qwen2Config, Qwen2ForCausalLM

    numbers = dict(SHAPES[shape])
    architecture = numbers.pop("architecture")
    if architecture != "qwen2":
        raise ValueError(f"no builder for {architecture}")
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(**numbers))
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as temp:
        source = Path(temp) / "source"
        model.save_pretrained(source)
        del model
        main_export(str(source), out, task="text-generation-with-past", do_validation=False)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = export(args.shape, args.out, args.seed)
    print(f"exported {args.shape} with random weights to {folder}")


if __name__ == "__main__":
    main()
