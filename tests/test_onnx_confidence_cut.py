"""The model's confidence cut: token probabilities out of the decoder (equal to a softmax of
the logits a no-cache forward pass gives), the cut and gate on golden answers, the backend
with ``cut: none`` unchanged, and the fit recovering a known calibration."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from test_onnx_engine import BigramModel, DigitTokenizer

from ghostcomplete.backends.base import CompletionPrompt, GenerationLimits
from ghostcomplete.backends.onnx import confidence_cut
from ghostcomplete.backends.onnx.backend import OnnxBackend
from ghostcomplete.backends.onnx.confidence_cut import (
    CALIBRATION,
    FITS,
    SHAPE_FITS,
    calibration_for,
    confident_cut,
    cut_points,
    prefix_chance,
)
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.decode import Limits, decode, prefill
from ghostcomplete.backends.onnx.engine import OnnxModel
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import load_tokenizer
from ghostcomplete.bench import model_cut_study
from ghostcomplete.bench.model_cut_study import Answer, examples, fit_logistic
from ghostcomplete.context.syntax import Scope
from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).parent / "fixtures" / "onnx"
REPEATING = "for i in range(10):\n    print(i)\nfor j in range(10):\n    print(j)\n" * 3
# Chance = sigmoid(4 + 4 × log-product): near 1 while every token is sure, near 0 soon after.
SHARP = (4.0, 4.0)


def softmax_chance(logits: np.ndarray, token: int) -> float:
    shifted = np.exp(logits.astype(np.float64) - logits.max())
    return float(shifted[token] / shifted.sum())


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
@pytest.mark.parametrize("drafts", [0, 8])
def test_token_chances_are_the_softmax_of_the_forward_logits(name: str, drafts: int) -> None:
    folder = FIXTURES / name
    tokenizer = load_tokenizer(folder)
    model = OnnxModel(folder / "model.onnx", "cpu", 1)
    limits = Limits(StopRule(Scope.BLOCK, "", 10_000, 100_000), set(), 20)
    ids = tokenizer.encode(REPEATING)
    start, _ = prefill(model, ids)
    # The model's own continuation earlier in the prompt: drafts that verification accepts.
    ids = [*ids, *decode(model, tokenizer, start, limits).tokens, *ids]
    start, _ = prefill(model, ids)
    done = decode(model, tokenizer, start, limits, None, drafts)
    assert len(done.chances) == len(done.tokens) == len(done.ends) > 0
    for index, token in enumerate(done.tokens):
        logits, _ = model.forward(ids + done.tokens[:index], model.empty_cache())
        assert done.chances[index] == pytest.approx(softmax_chance(logits[-1], token), abs=1e-4)
    assert done.ends == sorted(done.ends) and done.ends[-1] == len(done.text)


def test_verified_drafts_carry_the_chances_of_their_own_rows() -> None:
    model, tokenizer = BigramModel(), DigitTokenizer()
    prompt = [1, 2, 3, 4, 5, 6, 1, 2]
    start, _ = prefill(model, prompt)  # type: ignore[arg-type]
    limits = Limits(StopRule(Scope.BLOCK, "", 10_000, 100_000), set(), 40)
    plain = decode(model, tokenizer, start, limits)  # type: ignore[arg-type]
    drafted = decode(model, tokenizer, start, limits, None, 8)  # type: ignore[arg-type]
    assert drafted.accepted > 0
    previous = [prompt[-1], *drafted.tokens[:-1]]
    expected = [
        softmax_chance(model.table[p], t) for p, t in zip(previous, drafted.tokens, strict=True)
    ]
    assert drafted.chances == pytest.approx(expected, abs=1e-6)
    assert drafted.chances == pytest.approx(plain.chances, abs=1e-6)


# An answer token by token: a sure statement, then a line the user does not type.
SURE_THEN_UNSURE = ["result", " =", " compute", "(", "a", ",", " b", ")", "\n", "print", "(", ")"]


def ends_of(tokens: list[str]) -> list[int]:
    ends, at = [], 0
    for token in tokens:
        at += len(token)
        ends.append(at)
    return ends


def test_a_sure_start_then_an_unsure_tail_is_cut_at_the_boundary() -> None:
    chances = [0.99] * 9 + [0.1, 0.5, 0.5]
    text = "".join(SURE_THEN_UNSURE)
    cut = confident_cut(text, ends_of(SURE_THEN_UNSURE), chances, SHARP)
    assert cut is not None
    assert cut.text == "result = compute(a, b)"
    assert cut.chance > 0.9


def test_the_cut_never_leaves_a_bracket_open_an_operator_dangling_or_a_word_split() -> None:
    tokens = ["result", " =", " compute", "(", "a", ",", " b", ")", "\n"]
    text = "".join(tokens)
    points = [text[:end] for _, end in cut_points(text, ends_of(tokens))]
    assert points == ["result", "result = compute", "result = compute(a, b)", text]
    # Unsure from " b" on: the longest start without an open bracket.
    chances = [0.99] * 6 + [0.05, 0.9, 0.9]
    cut = confident_cut(text, ends_of(tokens), chances, SHARP)
    assert cut is not None and cut.text == "result = compute"
    split = ["comp", "ute", "(", ")"]
    assert [end for _, end in cut_points("compute()", ends_of(split))] == [7, 9]


def test_all_unsure_has_a_low_chance_and_the_gate_drops_it() -> None:
    chances = [0.1] * len(SURE_THEN_UNSURE)
    cut = confident_cut("".join(SURE_THEN_UNSURE), ends_of(SURE_THEN_UNSURE), chances, SHARP)
    assert cut is not None and cut.chance < 0.05


def test_the_chance_falls_with_the_log_product() -> None:
    assert prefix_chance(0.0, SHARP) > prefix_chance(-1.0, SHARP) > 0.0
    assert prefix_chance(0.0, SHARP) == pytest.approx(1 / (1 + math.exp(-4)))


def tiny_prompt(prefix: str) -> CompletionPrompt:
    context = PackedContext(prefix, "", (), 0)
    return CompletionPrompt(
        "python",
        "a.py",
        context,
        text=render_fim(context, "starcoder", "python", "a.py"),
        stop=TEMPLATES["starcoder"].stop,
        before_cursor=prefix,
    )


def answer(settings: OnnxSettings, calibration: tuple[float, ...] | None = SHARP) -> list[str]:
    async def run() -> list[str]:
        backend = OnnxBackend(settings)
        backend.calibration = calibration
        try:
            limits = GenerationLimits(Scope.BLOCK, 400, 4, 1, time.monotonic() + 30)
            return [c.text for c in await backend.generate(tiny_prompt(REPEATING), limits)]
        finally:
            await backend.aclose()

    return asyncio.run(run())


def test_the_backend_with_cut_none_shows_the_whole_answer_and_the_gate_hides_it() -> None:
    base = OnnxSettings(path=str(FIXTURES / "tiny-gpt2"), threads=1, warmup=False)
    whole = answer(OnnxSettings(**{**base.__dict__, "cut": "none"}))
    assert whole and whole[0].strip()
    cut = answer(OnnxSettings(**{**base.__dict__, "cut": "confidence", "min_confidence": 0.0}))
    assert cut and whole[0].startswith(cut[0].rstrip())
    assert answer(OnnxSettings(**{**base.__dict__, "min_confidence": 1.0})) == []
    # A model with no fitted calibration: no cut and no gate.
    assert answer(OnnxSettings(**{**base.__dict__, "min_confidence": 1.0}), None) == whole


def test_only_a_fitted_architecture_gets_a_calibration_and_a_fitted_shape_its_own() -> None:
    assert calibration_for({"model_type": "qwen2"}) == FITS["qwen2"]
    assert calibration_for({"model_type": "gpt2"}) is None and calibration_for({}) is None
    (shape, weights), *_ = SHAPE_FITS.items()
    model_type, hidden, layers = shape
    qwen = {"model_type": model_type, "hidden_size": hidden, "num_hidden_layers": layers}
    assert calibration_for(qwen) == weights != FITS[model_type]
    # Another size of the architecture: the architecture's weights.
    assert calibration_for({**qwen, "hidden_size": hidden * 2}) == FITS[model_type]
    assert calibration_for({**qwen, "num_hidden_layers": "24"}) == FITS[model_type]


def test_the_fit_recovers_a_known_calibration() -> None:
    rng = np.random.default_rng(7)
    known = np.array([1.5, 1.2])
    size = 100_000
    x = np.column_stack([np.ones(size), rng.uniform(-6, 0, size)])
    y = (rng.random(size) < 1 / (1 + np.exp(-x @ known))).astype(float)
    fitted = fit_logistic(x, y, l2=1e-3)
    assert np.allclose(fitted, known, atol=0.1), fitted


def test_examples_label_each_cut_point_by_whether_the_truth_starts_with_it() -> None:
    text = "".join(SURE_THEN_UNSURE)
    one = Answer(
        "t", "line", text, "result = compute(a, b)\nreturn result", text,
        tuple(ends_of(SURE_THEN_UNSURE)), tuple([0.5] * len(SURE_THEN_UNSURE)),
    )  # fmt: skip
    x, y = examples([one])
    # "result", "result = compute", "result = compute(a, b)" are typed; "...print" is not.
    assert y.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert x[:, 1].tolist() == pytest.approx([math.log(0.5) * n for n in (1, 3, 8, 10, 12)])


def test_the_study_fits_on_development_runs_only_and_judges_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "value = compute(a)\nprint(value)\n"
    ends = [5, 7, 15, 16, 17, 18, 19, 24, 25, 30, 31, 32]
    rows = [
        {
            "task_id": f"t{i}", "kind": "line", "context": "default", "suggestion": text,
            "target": "value = compute(a)" if i % 2 else "value = other(b)",
            "trace": {"text": text, "ends": ends, "chances": [0.9] * 7 + [0.2] * 5},
        }
        for i in range(8)
    ]  # fmt: skip
    dev, test = tmp_path / "dev.json", tmp_path / "test.json"
    dev.write_text(json.dumps({"settings": {"split": "dev"}, "tasks": rows}))
    test.write_text(json.dumps({"settings": {"split": "test"}, "tasks": rows}))
    assert model_cut_study.main([str(dev), "--fit"]) == 0
    assert "fitted on 8 tasks" in capsys.readouterr().out
    assert model_cut_study.main([str(test)]) == 0
    assert "| confidence cut, gate 0.1 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        model_cut_study.main([str(test), "--fit"])
    # Leaving each development seed out in turn: a refit and the current weights per fold.
    # Files of one seed hold the same tasks (another model's run, say): they leave together.
    seeded = {}
    for name, seed, tasks in (("a1", 1, rows), ("b1", 1, rows), ("a2", 2, rows[:4])):
        seeded[name] = tmp_path / f"{name}.json"
        seeded[name].write_text(
            json.dumps({"settings": {"split": "dev", "seed": seed}, "tasks": tasks})
        )
    files = [str(seeded[name]) for name in ("a1", "a2", "b1")]
    assert model_cut_study.main([*files, "--cross", "--gates", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("| refit (") == 2 and printed.count("| current (") == 2
    assert "| seed 1 | refit" in printed and "| seed 2 | current" in printed
    assert "| all | refit | 20 |" in printed and "| all | current | 20 |" in printed
    with pytest.raises(SystemExit):  # one seed: nothing to fit on when it is left out
        model_cut_study.main([str(seeded["a1"]), str(seeded["b1"]), "--cross"])
    with pytest.raises(SystemExit):
        model_cut_study.main([str(dev), str(test), "--cross"])


def test_a_replay_uses_the_weights_the_backend_uses_for_the_runs_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (shape, weights), *_ = SHAPE_FITS.items()
    model_type, hidden, layers = shape
    folder = tmp_path / "models" / "small"
    folder.mkdir(parents=True)
    config = {"model_type": model_type, "hidden_size": hidden, "num_hidden_layers": layers}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "ghostcomplete-model.json").write_text("{}")
    monkeypatch.setenv("GHOSTCOMPLETE_MODELS", str(tmp_path / "models"))

    def run(onnx: dict[str, str]) -> dict[str, object]:
        return {"server_settings": {"backend": {"kind": "onnx", "onnx": onnx}}}

    assert model_cut_study.weights_of_run(run({"path": str(folder)})) == weights
    assert model_cut_study.weights_of_run(run({"path": str(folder / "model.onnx")})) == weights
    assert model_cut_study.weights_of_run(run({"model": "small"})) == weights
    # The folder gone, another model, no model named: the architecture default.
    assert model_cut_study.weights_of_run(run({"path": str(tmp_path / "gone")})) == CALIBRATION
    assert model_cut_study.weights_of_run(run({"model": "other"})) == CALIBRATION
    assert model_cut_study.weights_of_run({}) == CALIBRATION


def test_the_backend_takes_its_models_shape_fit_else_its_architectures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = FIXTURES / "tiny-qwen2-instruct"
    config = json.loads((folder / "config.json").read_text())
    shape = (config["model_type"], config["hidden_size"], config["num_hidden_layers"])

    def calibration() -> tuple[float, ...] | None:
        async def run() -> tuple[float, ...] | None:
            backend = OnnxBackend(OnnxSettings(path=str(folder), threads=1, warmup=False))
            try:
                return backend.calibration
            finally:
                await backend.aclose()

        return asyncio.run(run())

    assert calibration() == FITS["qwen2"]
    monkeypatch.setattr(confidence_cut, "SHAPE_FITS", {shape: SHARP})
    assert calibration() == SHARP
