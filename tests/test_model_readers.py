"""Reading decoders for `ghostcomplete model import`: GGUF files written here with gguf-py's
writer (as llama.cpp's converter writes them) and Hugging Face folders written with the
`safetensors` package, read back into Hugging Face names, float32 and a DecoderConfig."""

from __future__ import annotations

import json
import struct
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from tiny_decoders import (
    CHAT_TEMPLATE,
    SPECIAL,
    USER_DEFINED,
    gguf_tokenizer_folder,
    llama_cpp_permute,
    random_weights,
    stored_values,
    tiny_config,
    vocabulary,
    write_gguf,
    write_hf_config,
)

from ghostcomplete.backends.onnx.chat import load_chat_template
from ghostcomplete.backends.onnx.tokenizer import HfTokenizer, TiktokenTokenizer, load_tokenizer
from ghostcomplete.model.decoder_source import SourceError
from ghostcomplete.model.gguf_weights import permute_rows, read_gguf, unpermute_rows
from ghostcomplete.model.hf_weights import read_hf_folder

pytestmark = pytest.mark.timeout(60)

TEXTS = [
    "def f(x):\n    return x  \n\n\tin retur\n",
    "naïve café 12345 ünïcödé 😀 日本語\r\n  ",
    "  x = 1  # done\n",
]


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
@pytest.mark.parametrize("quantized", ["F32", "F16", "Q8_0"])
def test_a_gguf_reads_back_as_the_weights_written(tmp_path: Path, architecture, quantized):
    config = tiny_config(architecture)
    weights = random_weights(config)
    path = write_gguf(tmp_path / "tiny.gguf", config, weights, quantized)
    source = read_gguf(path)
    assert source.config == config
    assert set(source.weights) == set(weights)
    for name, values in weights.items():
        got = source.weights[name]
        assert got.dtype == np.float32 and got.shape == values.shape, name
        expected = stored_values(values, quantized)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=name)
        # And close to what was meant, up to the storage type's rounding.
        np.testing.assert_allclose(got, values, atol=0 if quantized == "F32" else 4e-3)
    assert source.extra_config == {"bos_token_id": 256 + 11, "eos_token_id": 256 + 11 + 2}


def test_a_gguf_without_an_output_layer_has_tied_embeddings(tmp_path: Path):
    config = tiny_config("qwen2", tied=True)
    path = write_gguf(tmp_path / "tied.gguf", config, random_weights(config))
    source = read_gguf(path)
    assert source.config.tied_embeddings and "lm_head.weight" not in source.weights


def test_the_llama_reorder_is_undone_exactly():
    rows = np.arange(4 * 16 * 3, dtype=np.float32).reshape(4 * 16, 3)
    permuted = llama_cpp_permute(rows, 4)
    assert not np.array_equal(permuted, rows)
    np.testing.assert_array_equal(permute_rows(rows, 4), permuted)
    np.testing.assert_array_equal(unpermute_rows(permuted, 4), rows)


def _rope_interleaved(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """llama.cpp's llama rotation: adjacent pairs (0, 1), (2, 3), ... of each head."""
    dim = x.shape[-1]
    angles = positions[:, None] * theta ** (-np.arange(0, dim, 2) / dim)[None, :]
    cos, sin = np.cos(angles), np.sin(angles)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def _rope_halves(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """Hugging Face's rotation: rotate_half, pairs (i, i + dim/2)."""
    dim = x.shape[-1]
    angles = positions[:, None] * theta ** (-np.arange(0, dim, 2) / dim)[None, :]
    cos = np.concatenate([np.cos(angles)] * 2, axis=-1)
    sin = np.concatenate([np.sin(angles)] * 2, axis=-1)
    rotated = np.concatenate([-x[..., dim // 2 :], x[..., : dim // 2]], axis=-1)
    return x * cos + rotated * sin


def test_unpermuted_llama_weights_give_llama_cpps_attention_under_hf_rope(tmp_path: Path):
    """The reference: attention scores of llama.cpp's layout with its interleaved rotation
    equal those of the read weights with Hugging Face's rotate_half."""
    config = tiny_config("llama")
    weights = random_weights(config, seed=3)
    source = read_gguf(write_gguf(tmp_path / "llama.gguf", config, weights))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, config.hidden_size)).astype(np.float32)
    positions = np.arange(7, dtype=np.float64)
    dim, theta = config.head_dim, config.rope_theta
    q_name, k_name = (
        "model.layers.1.self_attn.q_proj.weight",
        "model.layers.1.self_attn.k_proj.weight",
    )
    # llama.cpp: its stored rows, rotated in adjacent pairs.
    q_cpp = (x @ llama_cpp_permute(weights[q_name], config.num_heads).T).reshape(7, -1, dim)
    k_cpp = (x @ llama_cpp_permute(weights[k_name], config.num_kv_heads).T).reshape(7, -1, dim)
    # ours: the rows as read, rotated by halves.
    q_hf = (x @ source.weights[q_name].T).reshape(7, -1, dim)
    k_hf = (x @ source.weights[k_name].T).reshape(7, -1, dim)
    for head in range(config.num_heads):
        kv = head // (config.num_heads // config.num_kv_heads)
        cpp = (
            _rope_interleaved(q_cpp[:, head], positions, theta)
            @ _rope_interleaved(k_cpp[:, kv], positions, theta).T
        )
        ours = (
            _rope_halves(q_hf[:, head], positions, theta)
            @ _rope_halves(k_hf[:, kv], positions, theta).T
        )
        np.testing.assert_allclose(ours, cpp, rtol=1e-4, atol=1e-4)
        # Without the undo the scores differ: the check can fail.
        wrong = (x @ llama_cpp_permute(weights[q_name], config.num_heads).T).reshape(7, -1, dim)
        assert not np.allclose(
            _rope_halves(wrong[:, head], positions, theta)
            @ _rope_halves(k_hf[:, kv], positions, theta).T,
            cpp,
            atol=1e-3,
        )


@pytest.mark.parametrize("pre", ["qwen2", "llama-bpe"])
def test_the_gguf_tokenizer_round_trips_and_keeps_every_special_token(tmp_path: Path, pre):
    config = tiny_config("qwen2")
    path = write_gguf(tmp_path / "tiny.gguf", config, random_weights(config), pre=pre)
    folder = tmp_path / "model"
    folder.mkdir()
    read_gguf(path).write_tokenizer(folder)
    tokenizer = load_tokenizer(folder)
    assert isinstance(tokenizer, TiktokenTokenizer)  # qwen2's NFC normalizer included
    tokens, _, _ = vocabulary()
    assert tokenizer.special == {text: tokens.index(text) for text in SPECIAL + USER_DEFINED}
    for text in TEXTS:
        ids = tokenizer.encode(text)
        assert b"".join(tokenizer.token_bytes(i) for i in ids) == text.encode("utf-8")
    # The merges apply: "def" and "return" are single tokens, and so are four spaces.
    assert tokenizer.encode("def") == [tokens.index("def")]
    assert tokenizer.encode("return") == [tokens.index("return")]
    assert tokenizer.encode("    ") == [tokens.index("ĠĠĠĠ")]
    # Every FIM marker is one id, wherever it stands.
    prompt = (
        "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|><|fim_pad|><|repo_name|><|file_sep|>"
    )
    ids = tokenizer.encode(prompt)
    for marker in ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>"):
        assert ids.count(tokens.index(marker)) == 1
    assert ids[0] == tokens.index("<|fim_prefix|>") and ids[-1] == tokens.index("<|file_sep|>")
    # Unused padding ids are no text.
    assert "[PAD0]" not in json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]


def test_a_normalizing_tokenizer_read_with_tiktoken_gives_the_tokenizers_packages_ids(
    tmp_path: Path,
):
    """qwen2's tokenizer.json normalizes to NFC; tiktoken, which has no normalizers, gets the
    text normalized first, so that text in decomposed form gives the same ids as the
    `tokenizers` package reading the same file."""
    folder = gguf_tokenizer_folder(tmp_path)
    fast = load_tokenizer(folder)
    assert isinstance(fast, TiktokenTokenizer) and fast.form == "NFC"
    reference = HfTokenizer(folder / "tokenizer.json")
    decomposed = "name = 'Jose\u0301'  # cafe\u0301, A\u030a, \u1100\u1161\n"
    for text in [*TEXTS, decomposed, "<|fim_prefix|>e\u0301<|fim_suffix|>"]:
        assert fast.encode(text) == reference.encode(text), text
    assert fast.encode(decomposed) == fast.encode(unicodedata.normalize("NFC", decomposed))
    assert fast.encode(decomposed) != fast.encoding.encode_ordinary(decomposed)
    # A lone surrogate (an editor's JSON can carry one) is encoded, not an error: the
    # `tokenizers` package refuses such a string.
    assert fast.encode("x = '\ud800'\n")


def test_the_gguf_chat_template_and_token_ids_are_written(tmp_path: Path):
    config = tiny_config("qwen2")
    path = write_gguf(tmp_path / "tiny.gguf", config, random_weights(config))
    folder = tmp_path / "model"
    folder.mkdir()
    read_gguf(path).write_tokenizer(folder)
    template = load_chat_template(folder)
    assert template is not None and template.source == CHAT_TEMPLATE
    assert template.render([{"role": "user", "content": "hi"}]) == "<|im_start|>hi<|im_end|>"
    assert template.special["eos_token"] == "<|im_end|>"
    generation = json.loads((folder / "generation_config.json").read_text())
    tokens, _, _ = vocabulary()
    assert generation["eos_token_id"] == tokens.index("<|im_end|>")


def test_bad_gguf_inputs_say_what_is_wrong(tmp_path: Path):
    text = tmp_path / "notes.gguf"
    text.write_text("hello, not a model\n")
    with pytest.raises(SourceError, match="not a GGUF file"):
        read_gguf(text)
    config = tiny_config("qwen2")
    whole = write_gguf(tmp_path / "whole.gguf", config, random_weights(config)).read_bytes()
    for cut in (10, 200, len(whole) // 2, len(whole) - 1):
        truncated = tmp_path / f"cut{cut}.gguf"
        truncated.write_bytes(whole[:cut])
        with pytest.raises(SourceError, match=r"truncated|not a readable GGUF"):
            read_gguf(truncated)
    with pytest.raises(SourceError, match=r"not a readable GGUF|cannot read"):
        read_gguf(tmp_path / "missing.gguf")
    other = write_gguf(tmp_path / "phi.gguf", config, random_weights(config), architecture="phi3")
    with pytest.raises(SourceError, match="architecture 'phi3' is not supported"):
        read_gguf(other)
    spm = write_gguf(tmp_path / "spm.gguf", config, random_weights(config), tokenizer_model="llama")
    with pytest.raises(SourceError, match="tokenizer 'llama' is not supported"):
        read_gguf(spm)
    odd = write_gguf(tmp_path / "odd.gguf", config, random_weights(config), pre="jais")
    with pytest.raises(SourceError, match="pre-tokenizer 'jais' is not supported"):
        read_gguf(odd)


def _write_bf16(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """A safetensors file in bfloat16 (the `safetensors` package's numpy side has none)."""
    header, blobs, offset = {}, [], 0
    for name, values in tensors.items():
        raw = (values.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(values.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
def test_a_hugging_face_folder_reads_back(tmp_path: Path, architecture):
    from safetensors.numpy import save_file

    config = tiny_config(architecture, tied=architecture == "llama")
    weights = random_weights(config)
    folder = tmp_path / "hf"
    folder.mkdir()
    write_hf_config(folder, config)
    names = sorted(weights)
    # Three shards in three types: float32, float16 (both by the reference writer), bfloat16.
    save_file({n: weights[n] for n in names[0::3]}, str(folder / "model-1.safetensors"))
    save_file(
        {n: weights[n].astype(np.float16) for n in names[1::3]},
        str(folder / "model-2.safetensors"),
    )
    _write_bf16(folder / "model-3.safetensors", {n: weights[n] for n in names[2::3]})
    (folder / "tokenizer.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text('{"chat_template": "x"}')
    source = read_hf_folder(folder)
    assert source.config == config
    assert set(source.weights) == set(weights)
    for index, name in enumerate(names):
        got = source.weights[name]
        assert got.dtype == np.float32 and got.shape == weights[name].shape
        if index % 3 == 0:
            np.testing.assert_array_equal(got, weights[name])
        elif index % 3 == 1:
            np.testing.assert_array_equal(got, weights[name].astype(np.float16).astype(np.float32))
        else:
            np.testing.assert_allclose(got, weights[name], rtol=2**-7)
    assert source.extra_config == {"eos_token_id": 3, "bos_token_id": 1}
    out = tmp_path / "out"
    out.mkdir()
    source.write_tokenizer(out)
    assert sorted(p.name for p in out.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]


def test_bad_hugging_face_folders_say_what_is_wrong(tmp_path: Path):
    from safetensors.numpy import save_file

    folder = tmp_path / "hf"
    folder.mkdir()
    with pytest.raises(SourceError, match=r"no config\.json"):
        read_hf_folder(folder)
    config = tiny_config("qwen2")
    write_hf_config(folder, config)
    with pytest.raises(SourceError, match=r"no \*.safetensors"):
        read_hf_folder(folder)
    weights = random_weights(config)
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(SourceError, match=r"lacks the weight model\.layers\.1\.mlp\.up_proj"):
        read_hf_folder(folder)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="truncated"):
        read_hf_folder(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(SourceError, match="model_type 'gpt2' is not supported"):
        read_hf_folder(folder)
