"""Settings of the local ONNX backend (``backend.onnx``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ghostcomplete.backends.setting_checks import between, one_of


@dataclass(frozen=True)
class OnnxSettings:
    # An installed model by name (`ghostcomplete model list`); wins over ``path``.
    model: str | None = None
    # A folder in the Hugging Face optimum layout (model.onnx, config.json, tokenizer files);
    # null = the model shipped with ghostcomplete.
    path: str | None = None
    # Which file in that folder: null = model.onnx (or model_quantized.onnx when ``quantized``).
    file: str | None = None
    # The int8 dynamically quantized file (model_quantized.onnx) when the folder has one. For
    # the built-in model on the CPU it is as accurate and faster (the figures are in
    # model/README.md); on CUDA keep the float file.
    quantized: bool = False
    # "auto" = CUDA when onnxruntime can use it, else the CPU.
    provider: str = field(default="auto", metadata=one_of("auto", "cuda", "cpu"))
    # Intra-op threads on the CPU; 0 = min(4, cores).
    threads: int = field(default=0, metadata=between(0, 256))
    # Let onnxruntime's idle threads busy-wait between operators: faster decoding on an idle
    # machine, slower on a busy one, and it burns the cores the editor needs (engine.py).
    spinning: bool = False
    # Tokens generated per candidate at most.
    max_new_tokens: int = field(default=64, metadata=between(1, 4096))
    # The second and later candidates are sampled at this temperature (the first is greedy).
    temperature: float = field(default=0.8, metadata=between(0.0, 5.0))
    top_p: float = field(default=0.95, metadata=between(0.0, 1.0))
    # Keep the KV cache of the last prompt and reuse it for the next one sharing its start.
    reuse_cache: bool = True
    # Prompt-lookup speculative decoding: draft tokens copied from the prompt, verified in
    # one forward pass. Output-identical to greedy decoding.
    prompt_lookup: bool = True
    # Token healing: end the prompt before the prefix's last token and make the answer begin
    # with its text (backends/onnx/healing.py), so that a prefix ending in a space or a
    # half-typed word is continued with the tokens the model would have used there.
    token_healing: bool = True
    # Run the model once at load, so that the first completion does not pay for it.
    warmup: bool = True
    # "confidence": cut the greedy suggestion where its own token probabilities say it stops
    # being likely (backends/onnx/confidence_cut.py); "none": show all the model wrote up to
    # the stop rules.
    cut: str = field(default="confidence", metadata=one_of("confidence", "none"))
    # With the confidence cut, show nothing when the estimated chance that the user types all
    # of the cut suggestion is lower: the highest gate that kept all the characters accepted
    # without one on the development projects of the acceptance benchmark (docs/benchmarks.md,
    # "The model's confidence cut"); higher gates show fewer suggestions, more of them taken.
    min_confidence: float = field(default=0.05, metadata=between(0.0, 1.0))
    # Override the FIM template family read from config.json ("starcoder", "qwen", ...).
    fim_family: str | None = None
