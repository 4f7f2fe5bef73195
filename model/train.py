"""Train and export the built-in model: a small Llama-style decoder with FIM, on CPU or CUDA.

    python -m ghostcomplete.model.train all --work ~/.cache/ghostcomplete-train \
        --max-steps 1310 --minutes 120

Steps (each resumable, each skipped when its output exists): ``data`` downloads the wheels of
corpus.toml and reads their .py files; ``tokenizer`` trains a byte-level BPE with FIM tokens;
``train`` trains (checkpointing to --work, resuming from the last checkpoint; CUDA when
present); ``export`` writes model.onnx (optimum, with the KV cache), config.json,
generation_config.json, tokenizer.tiktoken, tiktoken.json and card.json into backends/onnx/builtin/.

Needs the ``train`` extra: torch, transformers, tokenizers, optimum-onnx.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ghostcomplete.model import corpus, fim

HERE = Path(__file__).resolve().parent
SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SHAPE = {
    "vocab_size": 4096,
    "hidden_size": 192,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 6,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
SEQ, BATCH = 512, 8


def step_data(work: Path) -> list[corpus.SourceFile]:
    found = corpus.packages()
    wheels = corpus.download(found, work / "wheels")
    sources = corpus.read_sources(wheels, found)
    card = {
        p.name: {"version": p.version, "license": p.license, "files": 0, "bytes": 0} for p in found
    }
    for source in sources:
        card[source.package]["files"] += 1
        card[source.package]["bytes"] += len(source.text.encode())
    (work / "data.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"data: {len(sources)} files, {sum(len(s.text) for s in sources) / 1e6:.1f}M chars")
    return sources


def step_tokenizer(work: Path, sources: list[corpus.SourceFile]) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    path = work / "tokenizer.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=SHAPE["vocab_size"],
        special_tokens=fim.SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((s.text for s in sources if not corpus.is_held_out(s)), trainer)
    tokenizer.save(str(path))
    return tokenizer


def tokens_of(work: Path, name: str, texts: list[str], tokenizer: Any) -> np.ndarray:
    path = work / f"{name}.npy"
    if path.exists():
        return np.load(path)
    ids: list[int] = []
    for batch in range(0, len(texts), 1000):
        for encoding in tokenizer.encode_batch(texts[batch : batch + 1000]):
            ids.extend(encoding.ids)
    array = np.asarray(ids, dtype=np.uint16)
    np.save(path, array)
    return array


def step_train(
    work: Path, sources: list[corpus.SourceFile], tokenizer: Any, args: Any
) -> dict[str, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train_src = [s for s in sources if not corpus.is_held_out(s)]
    held_src = [s for s in sources if corpus.is_held_out(s)]
    train = tokens_of(work, "train", list(fim.examples(train_src, args.examples, 1)), tokenizer)
    held = tokens_of(work, "held", list(fim.examples(held_src, 2000, 2)), tokenizer)
    config = LlamaConfig(
        **SHAPE, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, rope_theta=10000.0
    )
    model: Any = LlamaForCausalLM(config)  # transformers types .to() oddly
    model = model.to(device)
    steps = args.tokens // (SEQ * BATCH)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95)
    )
    state_path = work / "checkpoint.pt"
    step, spent, log = 0, 0.0, []
    if state_path.exists():
        state = torch.load(state_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, spent, log = state["step"], state["seconds"], state["log"]
    rng = np.random.default_rng(step)

    def batch(data: np.ndarray, generator: np.random.Generator) -> Any:
        starts = generator.integers(0, len(data) - SEQ - 1, BATCH)
        rows = np.stack([data[s : s + SEQ + 1].astype(np.int64) for s in starts])
        return torch.from_numpy(rows).to(device)

    def held_loss() -> float:
        model.eval()
        generator = np.random.default_rng(7)
        with torch.no_grad():
            losses = [
                model(rows, labels=rows).loss.item()
                for rows in (batch(held, generator) for _ in range(16))
            ]
        model.train()
        return float(np.mean(losses))

    def save(elapsed: float) -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        torch.save({**state, "step": step, "seconds": elapsed, "log": log}, state_path)

    started = time.monotonic() - spent
    last = min(steps, args.max_steps or steps)
    while step < last and time.monotonic() - started < args.minutes * 60:
        progress = step / steps
        warm = min(1.0, (step + 1) / 100)
        lr = args.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        rows = batch(train, rng)
        loss = model(rows, labels=rows).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 200 == 0 or step == steps:
            elapsed = time.monotonic() - started
            entry = {
                "step": step,
                "tokens": step * SEQ * BATCH,
                "seconds": round(elapsed),
                "train_loss": round(loss.item(), 4),
                "held_loss": round(held_loss(), 4),
            }
            log.append(entry)
            print(json.dumps(entry), flush=True)
            save(time.monotonic() - started)
    save(time.monotonic() - started)  # a later run with more --minutes resumes from here
    model.save_pretrained(work / "hf")
    result = {
        "steps": step,
        "tokens": step * SEQ * BATCH,
        "seconds": round(time.monotonic() - started),
        "held_loss": round(held_loss(), 4),
        "device": device,
        "log": log,
    }
    result["train_tokens_available"] = len(train)
    return result


def step_export(work: Path, tokenizer: Any, result: dict[str, Any], out: Path) -> None:
    from optimum.exporters.onnx import main_export
    from transformers import PreTrainedTokenizerFast

    from ghostcomplete.backends.onnx.tokenizer import tiktoken_from_hf, write_tiktoken_file

    with tempfile.TemporaryDirectory() as temp:
        fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=fim.END)
        fast.save_pretrained(work / "hf")
        main_export(str(work / "hf"), temp, task="text-generation-with-past", do_validation=False)
        for name in ("model.onnx", "config.json", "generation_config.json"):
            shutil.copy(Path(temp) / name, out / name)
    quantize(out / "model.onnx", out / "model_quantized.onnx")
    spec = json.loads((work / "tokenizer.json").read_text())
    encoding = tiktoken_from_hf(spec, "ghostcomplete-code-4k")
    if encoding is None:
        raise SystemExit("the tokenizer does not convert to tiktoken")
    ranks = sorted(encoding._mergeable_ranks.items(), key=lambda item: item[1])
    write_tiktoken_file(
        out, "ghostcomplete-code-4k", encoding._pat_str, ranks, encoding._special_tokens
    )
    config = json.loads((out / "config.json").read_text())
    config["fim_family"] = "starcoder"
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    card = {"shape": SHAPE, "seq": SEQ, "batch": BATCH, **result}
    card["data"] = json.loads((work / "data.json").read_text())
    (out / "card.json").write_text(json.dumps(card, indent=1) + "\n")


def quantize(source: Path, target: Path) -> None:
    """int8 dynamic quantization of the weights of MatMul/Gather (backend.onnx.quantized)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("step", choices=["data", "tokenizer", "train", "export", "all"])
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "ghostcomplete-train")
    parser.add_argument("--out", type=Path, default=HERE.parent / "backends" / "onnx" / "builtin")
    parser.add_argument("--minutes", type=float, default=32.0)
    parser.add_argument("--tokens", type=int, default=7_000_000)
    parser.add_argument("--examples", type=int, default=12_000)
    # Stop after this many steps (the learning-rate schedule still spans --tokens): with it, a
    # rebuild does what the shipped model's run did, however fast the machine is.
    parser.add_argument("--max-steps", type=int, default=0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    sources = step_data(args.work)
    if args.step == "data":
        return
    tokenizer = step_tokenizer(args.work, sources)
    if args.step == "tokenizer":
        return
    result_path = args.work / "result.json"
    if args.step in ("train", "all"):
        result = step_train(args.work, sources, tokenizer, args)
        result_path.write_text(json.dumps(result, indent=1) + "\n")
    if args.step in ("export", "all"):
        step_export(args.work, tokenizer, json.loads(result_path.read_text()), args.out)


if __name__ == "__main__":
    main()
