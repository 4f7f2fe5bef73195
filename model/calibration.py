"""Calibrated int4 and int8 weights: the decoder run in numpy over calibration text, layer by
layer, each linear layer quantized by GPTQ (``gptq``) on the inputs it sees there.

The run is sequential, as in the GPTQ paper: a layer's inputs are computed with the layers
before it already quantized, so each one corrects for what the earlier ones lost. The
forward pass is the graph's (``decoder_graph``): RMSNorm, rotary embeddings on halves
(``rotate_half``), grouped-query causal attention, SwiGLU; it is only ever run on the
calibration windows, which all have the same length.

The calibration text is source code every Python install has: modules of the standard
library, read in a fixed order, so an import is reproducible and reads nothing of the user's.
For a model with a FIM format it is laid out as the task the model is quantized for: the
server's fill-in-the-middle prompts, each followed by its answer. Calibrated on plain text
instead, the 0.5B came nearer the float model on plain text and wrote worse completions
(bench/RESULTS.md, *Calibrated int4*).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ghostcomplete.model.decoder_graph import DecoderConfig, rotary_tables
from ghostcomplete.model.gptq import (
    inverse_factor,
    quantize_with_factor,
    second_moments,
)
from ghostcomplete.model.onnx_weights import Blocks, dequantize_blocks
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

# Standard-library modules the calibration windows are cut from, in this order. None is in a
# package the acceptance benchmark draws tasks from (bench/corpus.toml's [stdlib]).
CALIBRATION_MODULES = (
    "argparse.py",
    "difflib.py",
    "textwrap.py",
    "dataclasses.py",
    "csv.py",
    "heapq.py",
    "shutil.py",
    "fractions.py",
    "enum.py",
    "pathlib.py",
    "pathlib/__init__.py",
    "statistics.py",
    "ast.py",
    "tokenize.py",
)
WINDOWS = 16
WINDOW_TOKENS = 512
# Rows of the output layer quantized at a time: bounds its float copy.
HEAD_ROWS = 16384


class Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class Calibration:
    windows: np.ndarray  # int64 (windows, tokens)
    sources: tuple[str, ...]  # the files they came from
    family: str | None = None  # the FIM family they are prompts of; None: plain text


def _fim_glue(family: str, path: str) -> tuple[str, str, str]:
    """The text the server's prompt puts before the prefix, between prefix and suffix (or
    suffix and prefix), and before the middle, for ``family``."""
    mark_prefix, mark_suffix = "\x00PREFIX\x00", "\x00SUFFIX\x00"
    context = PackedContext(prefix=mark_prefix, suffix=mark_suffix, snippets=(), tokens=0)
    rendered = render_fim(context, family, "python", path)
    first, second = mark_prefix, mark_suffix
    if TEMPLATES[family].suffix_first:
        first, second = second, first
    head, rest = rendered.split(first)
    between, tail = rest.split(second)
    return head, between, tail


def _fim_window(
    tokenizer: Encoder, text: str, cursor: int, family: str, path: str, tokens: int
) -> list[int] | None:
    """One window of exactly ``tokens`` tokens: a fill-in-the-middle prompt as the server
    renders it, the cursor at character ``cursor`` of ``text``, followed by the three lines
    the model would write there; None where the file is too short around the cursor."""
    end = cursor
    for _ in range(3):
        found = text.find("\n", end)
        end = len(text) if found < 0 else found + 1
    head, between, tail = (tokenizer.encode(part) for part in _fim_glue(family, path))
    middle = tokenizer.encode(text[cursor:end])[: tokens // 4]
    prefix, suffix = tokenizer.encode(text[:cursor]), tokenizer.encode(text[end:])
    room = tokens - len(head) - len(between) - len(tail) - len(middle)
    suffix_room = min(len(suffix), room // 4)
    prefix_room = min(len(prefix), room - suffix_room)
    suffix_room = room - prefix_room
    if suffix_room > len(suffix) or prefix_room <= 0:
        return None
    before, after = prefix[len(prefix) - prefix_room :], suffix[:suffix_room]
    if TEMPLATES[family].suffix_first:
        return head + after + between + before + tail + middle
    return head + before + between + after + tail + middle


def calibration_windows(
    tokenizer: Encoder,
    count: int = WINDOWS,
    tokens: int = WINDOW_TOKENS,
    library: Path | None = None,
    family: str | None = None,
) -> Calibration:
    """``count`` windows of ``tokens`` tokens from the standard library's modules, a window
    or more a file; ValueError when the modules found do not hold enough. With a FIM
    ``family``, each window is a fill-in-the-middle prompt and its answer (the task the model
    is quantized for), else plain text; so too for a family whose prompts hold no suffix
    (``plain``) or that the server does not know."""
    library = library or Path(sysconfig.get_paths()["stdlib"])
    template = TEMPLATES.get(family) if family is not None else None
    if template is None or not template.uses_suffix:
        family = None
    windows: list[list[int]] = []
    sources: list[str] = []
    # At most a quarter of the windows from one file, so that no one module dominates.
    per_file = max(1, count // 4)
    for name in CALIBRATION_MODULES:
        path = library / name
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if family is None:
            ids = tokenizer.encode(text)
            found = [ids[i : i + tokens] for i in range(0, len(ids) - tokens + 1, tokens)]
        else:
            # Cursors at the start of lines spread evenly over the file.
            starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
            picks = [starts[(2 * k + 1) * len(starts) // (2 * per_file)] for k in range(per_file)]
            made = (_fim_window(tokenizer, text, at, family, name, tokens) for at in picks)
            found = [window for window in made if window is not None]
        for window in found[:per_file]:
            windows.append(window)
            sources.append(name)
            if len(windows) == count:
                return Calibration(np.asarray(windows, np.int64), tuple(sources), family)
    raise ValueError(
        f"the standard library at {library} holds {len(windows)} of the {count} calibration "
        f"windows of {tokens} tokens"
    )


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    variance = np.mean(np.square(x), axis=-1, keepdims=True)
    return (x / np.sqrt(variance + eps) * weight).astype(np.float32)


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotary embedding on (..., tokens, head_dim), the two halves of a head paired."""
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def _attention(
    qkv: np.ndarray, config: DecoderConfig, cos: np.ndarray, sin: np.ndarray
) -> np.ndarray:
    """Causal grouped-query attention of (windows, tokens, q + k + v) projections; ``cos``
    and ``sin`` (tokens, head_dim / 2) the rotation of each position."""
    windows, tokens, _ = qkv.shape
    heads, kv_heads, dim = config.num_heads, config.num_kv_heads, config.head_dim
    q_end = heads * dim
    k_end = q_end + kv_heads * dim
    q = qkv[..., :q_end].reshape(windows, tokens, kv_heads, heads // kv_heads, dim)
    k = qkv[..., q_end:k_end].reshape(windows, tokens, kv_heads, dim)
    v = qkv[..., k_end:].reshape(windows, tokens, kv_heads, dim)
    cos = cos[:, None, None, :]
    sin = sin[:, None, None, :]
    q = _rotate(q, cos, sin)
    k = _rotate(k, cos[:, :, 0], sin[:, :, 0])
    # (windows, kv_heads, group, tokens, dim) and (windows, kv_heads, 1, tokens, dim)
    q = q.transpose(0, 2, 3, 1, 4)
    k = k.transpose(0, 2, 1, 3)[:, :, None]
    v = v.transpose(0, 2, 1, 3)[:, :, None]
    future = np.triu(np.ones((tokens, tokens), bool), k=1)
    out = np.empty((windows, kv_heads, heads // kv_heads, tokens, dim), np.float32)
    for w in range(windows):
        scores = q[w] @ k[w].swapaxes(-1, -2) / np.float32(np.sqrt(dim))
        scores[..., future] = -np.inf
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        out[w] = scores @ v[w]
    out = out.transpose(0, 3, 1, 2, 4)
    return out.reshape(windows, tokens, heads * dim)


# What the forward pass does to the weights reading one input: given the inputs and the
# weights by the graph's names, the weights to compute with, in that order.
Quantize = Callable[[np.ndarray, Mapping[str, np.ndarray]], list[np.ndarray]]


def _as_they_are(inputs: np.ndarray, named: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(weight, np.float32) for weight in named.values()]


class _Quantizer:
    """Quantizes the weights reading one input, and keeps the blocks under the graph's names."""

    def __init__(self, bits: int, block: int) -> None:
        self.bits = bits
        self.block = block
        self.blocks: dict[str, Blocks] = {}

    def __call__(self, inputs: np.ndarray, named: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The dequantized weights, in the order of ``named``."""
        self.quantize(inputs, named)
        return [
            dequantize_blocks(*self.blocks[name])[:, : weight.shape[1]]
            for name, weight in named.items()
        ]

    def quantize(self, inputs: np.ndarray, named: Mapping[str, np.ndarray]) -> None:
        """Quantize the weights in ``named``, all of which read ``inputs``, into ``blocks``."""
        # Largest inputs first: nearer the float model than left to right (bench/RESULTS.md,
        # *Calibrated int4*).
        factor = inverse_factor(second_moments(inputs), self.block, energy_order=True)
        for name, weight in named.items():
            # The output layer a slice of rows at a time: its float copy is the large one.
            pieces = [
                quantize_with_factor(
                    weight[start : start + HEAD_ROWS], factor, self.bits, self.block
                )
                for start in range(0, weight.shape[0], HEAD_ROWS)
            ]
            self.blocks[name] = pieces[0] if len(pieces) == 1 else _stacked(pieces)


def _stacked(pieces: list[Blocks]) -> Blocks:
    values, scales, zero_points = (np.concatenate([piece[i] for piece in pieces]) for i in range(3))
    return values, scales, zero_points


def _final_hidden(
    config: DecoderConfig,
    weights: Mapping[str, np.ndarray],
    windows: np.ndarray,
    quantize: Quantize,
    say: Callable[[str], None],
) -> np.ndarray:
    """The decoder's last hidden states, normed, (windows, tokens, hidden), each linear
    layer's weights as ``quantize`` gives them for the inputs it sees."""
    eps = config.rms_norm_eps
    cos, sin = (table[: windows.shape[1]].astype(np.float32) for table in rotary_tables(config))
    x = np.asarray(weights["model.embed_tokens.weight"][windows], np.float32)
    for layer in range(config.num_layers):
        prefix = f"model.layers.{layer}"
        attn = f"{prefix}.self_attn"
        mlp = f"{prefix}.mlp"
        normed = _rms_norm(x, weights[f"{prefix}.input_layernorm.weight"], eps)
        parts = [weights[f"{attn}.{p}_proj.weight"] for p in "qkv"]
        (qkv_weight,) = quantize(normed, {f"{attn}.qkv_proj": np.concatenate(parts)})
        qkv = normed @ qkv_weight.T
        if config.attention_bias:
            qkv += np.concatenate([weights[f"{attn}.{p}_proj.bias"] for p in "qkv"])
        attended = _attention(qkv.astype(np.float32), config, cos, sin)
        del qkv, normed
        (o_weight,) = quantize(attended, {f"{attn}.o_proj": weights[f"{attn}.o_proj.weight"]})
        x = x + attended @ o_weight.T
        normed = _rms_norm(x, weights[f"{prefix}.post_attention_layernorm.weight"], eps)
        gate_weight, up_weight = quantize(
            normed,
            {
                f"{mlp}.gate_proj": weights[f"{mlp}.gate_proj.weight"],
                f"{mlp}.up_proj": weights[f"{mlp}.up_proj.weight"],
            },
        )
        gate = normed @ gate_weight.T
        product = (gate / (1.0 + np.exp(-gate)) * (normed @ up_weight.T)).astype(np.float32)
        del gate, normed
        (down_weight,) = quantize(product, {f"{mlp}.down_proj": weights[f"{mlp}.down_proj.weight"]})
        x = x + product @ down_weight.T
        del product
        say(f"calibrated layer {layer + 1} of {config.num_layers}")
    return _rms_norm(x, weights["model.norm.weight"], eps)


def reference_logits(
    config: DecoderConfig, weights: Mapping[str, np.ndarray], windows: np.ndarray
) -> np.ndarray:
    """The float model's logits (windows, tokens, vocab), as the forward pass here computes
    them: what the graph computes at fp32."""
    final = _final_hidden(config, weights, windows, _as_they_are, lambda _: None)
    head = weights["model.embed_tokens.weight" if config.tied_embeddings else "lm_head.weight"]
    return np.asarray(final @ np.asarray(head, np.float32).T)


def calibrate(
    config: DecoderConfig,
    weights: Mapping[str, np.ndarray],
    windows: np.ndarray,
    bits: int,
    block: int,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Blocks]:
    """The quantized blocks of every linear layer (and of an untied output layer), by the
    names ``DecoderGraph.linear`` gives them (``….self_attn.qkv_proj``, ``lm_head``). A tied
    output layer is the embedding, which is rounded with the embedding's rule."""
    quantizer = _Quantizer(bits, block)
    final = _final_hidden(config, weights, windows, quantizer, say)
    if not config.tied_embeddings:
        # Nothing computes with the quantized output layer here: no dequantized copy.
        quantizer.quantize(final, {"lm_head": weights["lm_head.weight"]})
    return quantizer.blocks
