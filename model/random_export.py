"""A random-weight decoder of a real model's shape, exported the way a user exports a model.

    python -m ghostcomplete.model.random_export --shape qwen2.5-0.5b --out FOLDER
        [--precision int4|int8|fp16|fp32]

Builds the ``transformers`` model from the shape's configuration (no download: the numbers
are below), with random weights, and exports it with optimum (``text-generation-with-past``,
the Hugging Face layout ``backend.onnx.path`` reads). With ``--precision`` it writes the
graph ``model import`` writes instead (``model/onnx_decoder.py``), from random weights made
one at a time as the writer reads them: no torch, and little memory. Random weights are
enough to time the engine (``python -m ghostcomplete.model.measure --path FOLDER --request
2000:16``): the work per token does not depend on the values. There is no tokenizer:
``--request`` feeds token ids.

Without ``--precision`` it needs the ``train`` extra (torch, transformers, optimum-onnx); the
server never imports this.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ghostcomplete.model.onnx_decoder import DecoderConfig, expected_shapes, write_decoder

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


def decoder_config(shape: str) -> DecoderConfig:
    numbers = SHAPES[shape]
    hidden, heads = numbers["hidden_size"], numbers["num_attention_heads"]
    return DecoderConfig(
        architecture=numbers["architecture"],
        vocab_size=numbers["vocab_size"],
        hidden_size=hidden,
        intermediate_size=numbers["intermediate_size"],
        num_layers=numbers["num_hidden_layers"],
        num_heads=heads,
        num_kv_heads=numbers["num_key_value_heads"],
        head_dim=hidden // heads,
        rms_norm_eps=numbers["rms_norm_eps"],
        rope_theta=numbers["rope_theta"],
        max_positions=numbers["max_position_embeddings"],
        tied_embeddings=numbers["tie_word_embeddings"],
        attention_bias=numbers["architecture"] == "qwen2",
    )


class RandomWeights(Mapping[str, np.ndarray]):
    """Random float32 weights of ``config``'s shapes, each made when it is read (the same
    values every time): a whole model's worth is never held at once."""

    def __init__(self, config: DecoderConfig, seed: int = 0) -> None:
        self.shapes = expected_shapes(config)
        self.seeds = {name: (seed, i) for i, name in enumerate(self.shapes)}

    def __getitem__(self, name: str) -> np.ndarray:
        shape = self.shapes[name]
        if name.endswith("norm.weight"):
            return np.ones(shape, np.float32)
        values = np.random.default_rng(self.seeds[name]).standard_normal(shape, np.float32)
        values *= 0.02
        return values

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def write(shape: str, out: Path, precision: str, seed: int = 0) -> Path:
    config = decoder_config(shape)
    write_decoder(out, config, RandomWeights(config, seed), precision)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--precision",
        choices=("int4", "int8", "fp16", "fp32"),
        default=None,
        help="write model/onnx_decoder.py's graph at this precision (no torch needed)",
    )
    args = parser.parse_args(argv)
    if args.precision:
        folder = write(args.shape, args.out, args.precision, args.seed)
    else:
        folder = export(args.shape, args.out, args.seed)
    print(f"wrote {args.shape} with random weights to {folder}")


if __name__ == "__main__":
    main()
