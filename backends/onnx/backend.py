"""The local ONNX backend: a decoder in the Hugging Face optimum layout, run by onnxruntime in
one worker thread, so that the server's event loop stays free and a superseded request stops
between two tokens."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from ghostcomplete.backends.base import (
    BackendError,
    Candidate,
    ChatLimits,
    ChatReply,
    CompletionPrompt,
    GenerationLimits,
    TokenTrace,
    UnfitRequest,
)
from ghostcomplete.backends.onnx.chat import (
    ChatModel,
    ChatTemplate,
    TooManyTokens,
    load_chat_template,
)
from ghostcomplete.backends.onnx.confidence_cut import calibration_for, confident_cut
from ghostcomplete.backends.onnx.config import OnnxSettings
from ghostcomplete.backends.onnx.decode import (
    Limits,
    Sampling,
    Start,
    decode,
    prefill_chunks,
)
from ghostcomplete.backends.onnx.engine import (
    KvCache,
    OnnxModel,
    fim_family_of,
)
from ghostcomplete.backends.onnx.healing import Forced, Vocabulary, heal
from ghostcomplete.backends.onnx.installed import (
    MANIFEST,
    installed_folder,
    parameter_count,
    prompt_tokens_per_s,
    read_json,
    read_manifest,
    speed_here,
)
from ghostcomplete.backends.onnx.pace import Pace
from ghostcomplete.backends.onnx.prompt import fit_prompt
from ghostcomplete.backends.onnx.prompt_budget import prompt_tokens_for
from ghostcomplete.backends.onnx.stops import StopRule
from ghostcomplete.backends.onnx.tokenizer import Tokenizer, load_tokenizer
from ghostcomplete.backends.onnx.worker import ModelWorker
from ghostcomplete.ranker.prompt import TEMPLATES

log = logging.getLogger("ghostcomplete.onnx")

T = TypeVar("T")

# Tokens drafted from the prompt per verification pass (prompt-lookup decoding).
DRAFT_TOKENS = 8
# Prompt tokens per prefill pass at most: between two passes a request can be abandoned
# (deadline, cancellation) and background warming gives way to a new request. Large enough
# that the passes cost next to no throughput; on a slow machine the pace (pace.py) makes them
# smaller, so that a pass in progress holds a newer request up only briefly.
PREFILL_CHUNK = 128
# What an answer needs after the engine stops (its cut, the hop back to the event loop, the
# session's filters): the engine stops this long before the request's deadline.
ANSWER_MARGIN_S = 0.02


def shipped_model_folder() -> Path:
    """Where the built-in model's files lie (package data of backends/onnx/builtin)."""
    import ghostcomplete.backends.onnx.builtin

    return Path(ghostcomplete.backends.onnx.builtin.__file__).resolve().parent


def _speed_measured_here(folder: Path) -> dict[str, Any] | None:
    """The speed the manifest in ``folder`` records for this machine; None where there is no
    manifest (an export, the built-in model), it cannot be read, or it has no such speed."""
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return speed_here(read_manifest(folder))
    except BackendError:
        return None


def prompt_budget(model: OnnxModel, folder: Path) -> int:
    """The prompt budget of the loaded ``model`` (prompt_budget.py): from the prompt speed the
    manifest in ``folder`` records for this machine and the provider it now runs on."""
    speed = _speed_measured_here(folder)
    rate = None
    if speed is not None and speed.get("provider") in (None, model.provider):
        rate = prompt_tokens_per_s(speed)
    return prompt_tokens_for(rate, on_gpu=model.device == "cuda")


def model_file(settings: OnnxSettings) -> Path:
    """The .onnx file the settings name; BackendError when it is not there."""
    if settings.model:
        folder = installed_folder(settings.model)
    elif settings.path:
        folder = Path(settings.path).expanduser()
    else:
        folder = shipped_model_folder()
    if settings.file:
        chosen = folder / settings.file
    else:
        quantized = [folder / n for n in ("model_quantized.onnx", "model.int8.onnx")]
        present = [q for q in quantized if q.exists()]
        chosen = present[0] if settings.quantized and present else folder / "model.onnx"
        merged = folder / "decoder_model_merged.onnx"  # older optimum exports
        if not chosen.exists() and merged.exists():
            chosen = merged
    if not chosen.is_file():
        where = (
            f"backend.onnx.model {settings.model!r}"
            if settings.model
            else f"backend.onnx.path {folder}"
            if settings.path
            else "the built-in model"
        )
        raise BackendError(f"no model file {chosen.name} in {where} ({folder})")
    return chosen


def stop_reason(deadline: float | None, cancel: threading.Event) -> str | None:
    """Why a request's work must stop now, if it must."""
    if cancel.is_set():
        return "cancelled"
    if deadline is not None and time.monotonic() > deadline:
        return "deadline"
    return None


class OnnxBackend:
    name = "onnx"
    remote = False

    def __init__(self, settings: OnnxSettings) -> None:
        self.settings = settings
        self.file = model_file(settings)
        self.tokenizer: Tokenizer = load_tokenizer(self.file.parent)
        self._model: OnnxModel | None = None
        self._eos: set[int] = set()
        self._vocabulary: Vocabulary | None = None  # token healing's, made at load
        self._cache: tuple[list[int], KvCache] | None = None
        # Only the worker thread runs passes, so only it reads and updates the pace.
        self._pace = Pace()
        # Counts the requests handed to the worker: background warming runs only while no
        # request came after the one whose prompt it warms.
        self._requests = 0
        self._closed = threading.Event()
        config = read_json(self.file.parent / "config.json")
        family = settings.fim_family or fim_family_of(config, self.tokenizer.special)
        if family is not None and family not in TEMPLATES:
            raise BackendError(f"unknown FIM family {family!r} (one of {', '.join(TEMPLATES)})")
        self.fim_family: str | None = family
        # The confidence cut's weights for this model; None: no cut, no gate.
        self.calibration = calibration_for(config)
        # How large the model is, for the hybrid's order (backends/hybrid/backend.py).
        self.parameters: int | None = parameter_count(config)
        # An instruct model (its folder has a chat template) also takes edit requests.
        self.chat_template: ChatTemplate | None = load_chat_template(self.file.parent)
        # The prompt budget for this model on this machine (prompt_budget.py): set by the
        # load, once the device it runs on is known; None before.
        self.prompt_tokens: int | None = None
        self.follows_instructions = self.chat_template is not None
        # Last: the load runs in the worker thread and sets fields assigned above (a tiny
        # model loads before this constructor would have reached them).
        self._worker = ModelWorker("ghostcomplete-onnx")
        self._loading = self._worker.submit_background(self._load)

    # --- in the worker thread ---------------------------------------------------------
    def _load(self) -> OnnxModel:
        settings = self.settings
        model = OnnxModel(
            self.file, settings.provider, settings.threads, spinning=settings.spinning
        )
        if settings.warmup:
            log.info("onnx: warm-up %.0f ms", model.warm_up())
        self._eos = model.eos_ids(self.tokenizer.special)
        if settings.token_healing:
            self._vocabulary = Vocabulary(self.tokenizer, model.vocab_size)
        self.prompt_tokens = prompt_budget(model, self.file.parent)
        self._model = model
        return model

    def _generate(
        self,
        prompt: CompletionPrompt,
        limits: GenerationLimits,
        cancel: threading.Event,
        serial: int,
        progress: Callable[[str], None] | None = None,
    ) -> list[Candidate]:
        model = self._model
        assert model is not None
        settings = self.settings
        started = time.monotonic()
        room = max(8, model.max_positions - settings.max_new_tokens)
        tokens = fit_prompt(prompt, self.fim_family, self.tokenizer, room)
        forced: Forced | None = None
        if self._vocabulary is not None:
            healing = heal(tokens, self.fim_family, prompt.context.prefix, self.tokenizer)
            if healing is not None:
                tokens, forced = healing.tokens, Forced(healing.removed, self._vocabulary)
        cached = self._cache if settings.reuse_cache else None
        answer_by = None if limits.deadline is None else limits.deadline - ANSWER_MARGIN_S
        done = prefill_chunks(
            model,
            tokens,
            cached,
            PREFILL_CHUNK,
            lambda: stop_reason(answer_by, cancel),
            self._pace,
            answer_by,
        )
        if settings.reuse_cache:
            self._cache = (done.covered, done.past)
        if done.start is None:
            log.debug(
                "onnx: prompt abandoned by %s after %d of %d tokens (%d reused)",
                done.reason,
                len(done.covered),
                len(tokens),
                done.reused,
            )
            if settings.reuse_cache and not self._closed.is_set():
                self._worker.submit_background(self._warm, tokens, serial)
            return []
        start, reused = done.start, done.reused
        prefill_ms = (time.monotonic() - started) * 1000
        line_prefix = prompt.context.prefix[prompt.context.prefix.rfind("\n") + 1 :]
        rule = StopRule(limits.scope, line_prefix, limits.max_lines, limits.max_chars, prompt.stop)
        stop_at = Limits(
            rule,
            self._eos,
            settings.max_new_tokens,
            answer_by,
            cancel,
            model.max_positions,
            pace=self._pace,
        )
        cutting = settings.cut == "confidence"
        # Streamed pieces cannot be taken back: with the cut, the answer goes out once cut.
        shown = None if cutting else progress
        drafts = self._draft_tokens()
        greedy = decode(model, self.tokenizer, start, stop_at, None, drafts, shown, forced)
        if settings.reuse_cache and greedy.past is not None:
            self._cache = (greedy.fed, greedy.past)
        greedy_ms = (time.monotonic() - started) * 1000 - prefill_ms
        details = {
            "prompt_tokens": float(len(tokens)),
            "reused_tokens": float(reused),
            "prefill_ms": round(prefill_ms, 3),
            "decode_ms": round(greedy_ms, 3),
            "tokens": float(len(greedy.tokens)),
            "forwards": float(greedy.forwards),
            "drafted": float(greedy.drafted),
            "accepted": float(greedy.accepted),
            "healed_bytes": float(len(forced.removed) if forced else 0),
        }
        log.debug("onnx: %s, ended by %s", details, greedy.reason)
        trace = TokenTrace(greedy.text, tuple(greedy.ends), tuple(greedy.chances))
        found: list[Candidate] = []
        first = self._shown(greedy.text, trace, details)
        if first is not None:
            found.append(Candidate(first, "onnx", details, trace))
        seed = zlib.crc32(prompt.text.encode("utf-8", "replace"))
        for index in range(1, limits.candidates):
            if cancel.is_set() or not self._time_for_another(answer_by, greedy_ms):
                break
            sampling = Sampling(settings.temperature, settings.top_p, seed + index)
            begin = Start(start.tokens, start.logits, start.past)
            sampled = decode(model, self.tokenizer, begin, stop_at, sampling, forced=forced)
            sampled_details: dict[str, float] = {}
            trace = TokenTrace(sampled.text, tuple(sampled.ends), tuple(sampled.chances))
            text = self._shown(sampled.text, trace, sampled_details)
            if text is not None and all(c.text != text for c in found):
                found.append(Candidate(text, "onnx:sample", sampled_details))
        return found

    def _shown(self, text: str, trace: TokenTrace, details: dict[str, float]) -> str | None:
        """What of a decoded answer is shown, None for nothing: all of it with ``cut: none``
        or for a model with no fitted calibration; else its confident start, gated by
        ``minConfidence``, whose estimated chance goes in ``details["confidence"]``."""
        if not text.strip():
            return None
        if self.settings.cut != "confidence" or self.calibration is None:
            return text
        cut = confident_cut(text, trace.ends, trace.chances, self.calibration)
        if cut is None:
            return None
        details["confidence"] = round(cut.chance, 4)
        details["cut_tokens"] = float(cut.tokens)
        if cut.chance < self.settings.min_confidence:
            return None
        return cut.text

    def _warm(self, tokens: list[int], serial: int) -> None:
        """Go on prefilling an abandoned prompt while no newer request has come: the next
        keystroke's prompt starts the same way and finds it in the cache."""
        model = self._model
        assert model is not None

        def stop() -> str | None:
            superseded = self._requests != serial or self._closed.is_set()
            return "superseded" if superseded else None

        done = prefill_chunks(model, tokens, self._cache, PREFILL_CHUNK, stop, self._pace)
        if len(done.covered) > done.reused:
            self._cache = (done.covered, done.past)
        log.debug("onnx: warmed the cache to %d of %d tokens", len(done.covered), len(tokens))

    def _reply(
        self,
        messages: list[dict[str, str]],
        limits: ChatLimits,
        cancel: threading.Event,
        progress: Callable[[str], None] | None,
    ) -> ChatReply:
        model = self._model
        assert model is not None and self.chat_template is not None
        chat = ChatModel(
            model,
            self.tokenizer,
            self.chat_template,
            self._eos,
            self._draft_tokens(),
            PREFILL_CHUNK,
        )
        return chat.answer(messages, limits, cancel, self._worker.between, progress)

    def _draft_tokens(self) -> int:
        # int8 dynamic quantization scales activations per call, so verifying drafts in one
        # pass would not give exactly the tokens of one-at-a-time decoding: no drafts there.
        exact = not any(mark in self.file.name for mark in ("quantized", "int8"))
        return DRAFT_TOKENS if self.settings.prompt_lookup and exact else 0

    @staticmethod
    def _time_for_another(deadline: float | None, greedy_ms: float) -> bool:
        if deadline is None:
            return True
        return time.monotonic() + greedy_ms / 1000 < deadline

    # --- the Backend protocol -----------------------------------------------------------
    async def generate(self, prompt: CompletionPrompt, limits: GenerationLimits) -> list[Candidate]:
        if self._closed.is_set():
            return []
        await self._loaded()
        cancel = threading.Event()
        self._requests += 1
        job = self._worker.submit(self._generate, prompt, limits, cancel, self._requests)
        return await self._outcome(job, cancel)

    async def stream(
        self, prompt: CompletionPrompt, limits: GenerationLimits
    ) -> AsyncIterator[str]:
        """The greedy candidate piece by piece, as the worker thread settles it."""
        if self._closed.is_set():
            return
        await self._loaded()
        loop = asyncio.get_running_loop()
        settled: asyncio.Queue[str | None] = asyncio.Queue()

        def tell(text: str | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(settled.put_nowait, text)

        cancel = threading.Event()
        one = dataclasses.replace(limits, candidates=1)
        self._requests += 1
        job = self._worker.submit(self._generate, prompt, one, cancel, self._requests, tell)
        job.add_done_callback(lambda _: tell(None))
        sent = 0
        try:
            while (text := await settled.get()) is not None:
                yield text[sent:]
                sent = len(text)
            found = await self._outcome(job, cancel)
            final = found[0].text if found else ""
            if len(final) > sent:  # what the last tokens settled
                yield final[sent:]
        finally:
            cancel.set()  # a no-op once done; else the worker stops before its next pass

    async def reply(
        self,
        messages: list[dict[str, str]],
        limits: ChatLimits,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        """The instruct model's answer. It runs on the model's thread as a long job: the
        completions that come meanwhile run between its forward passes (backends/onnx/worker.py)."""
        if self.chat_template is None:
            raise UnfitRequest(f"{self.file.parent} has no chat template: not an instruct model")
        if self._closed.is_set():
            raise BackendError("the onnx backend is closed")
        await self._loaded()
        cancel = threading.Event()
        told = 0

        def deliver(text: str) -> None:  # on the event loop, in the order the worker settled
            nonlocal told
            if on_text is not None and len(text) > told:
                on_text(text[told:])
                told = len(text)

        tell: Callable[[str], None] | None = None
        if on_text is not None:
            loop = asyncio.get_running_loop()

            def tell(text: str) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                    loop.call_soon_threadsafe(deliver, text)

        self._requests += 1
        job = self._worker.submit_long(self._reply, messages, limits, cancel, tell)
        answer = await self._outcome(job, cancel)
        deliver(answer.text)  # what the last tokens settled
        return answer

    async def chat(
        self, messages: list[dict[str, str]], deadline: float | None = None, max_tokens: int = 1024
    ) -> str:
        """The instruct model's whole answer (edit requests); never a part of one."""
        try:
            answer = await self.reply(messages, ChatLimits(max_tokens, deadline))
        except TooManyTokens as error:
            raise BackendError(f"{error}; select less or lower edit.contextLines") from None
        if answer.finish_reason == "stop":
            return answer.text
        if answer.finish_reason == "cancelled":
            return ""
        if answer.finish_reason == "length":
            why = (
                f"was cut off at {max_tokens} tokens (edit.maxTokens)"
                if answer.completion_tokens >= max_tokens
                else "ran past the model's window"
            )
        elif answer.finish_reason == "deadline":
            why = "did not finish in time"
        else:
            why = f"ended early ({answer.finish_reason})"
        raise BackendError(f"the model's answer {why}; nothing was applied")

    async def _loaded(self) -> None:
        try:
            await asyncio.wrap_future(self._loading)
        except BackendError:
            raise
        except Exception as error:  # anything onnxruntime raises while loading
            raise BackendError(f"cannot load {self.file}: {error}") from error

    async def _outcome(self, job: concurrent.futures.Future[T], cancel: threading.Event) -> T:
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            cancel.set()  # the worker stops before its next forward pass
            raise
        except BackendError:
            raise
        except Exception as error:
            raise BackendError(f"the model failed: {error}") from error

    async def aclose(self) -> None:
        self._closed.set()
        self._worker.shutdown()

    @property
    def model(self) -> OnnxModel:
        """The loaded model (blocks until it is); for benchmarks and tests."""
        return self._loading.result()
