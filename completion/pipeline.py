"""One completion, start to end: cursor -> context -> rank/pack -> backend -> filters.

No pygls here: the LSP handlers and the ``complete`` CLI both call ``complete``, and tests
call it with plain snapshots.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ghostcomplete.backends import Backend, Candidate, CompletionPrompt, GenerationLimits
from ghostcomplete.backends.base import TokenTrace
from ghostcomplete.backends.onnx.embedder import EmbedderError, OnnxEmbedder, default_embedder_path
from ghostcomplete.completion.offers import item_id
from ghostcomplete.completion.settings import DenseSettings, Settings
from ghostcomplete.context.cursor import Cursor, Skip, cut_at, should_complete
from ghostcomplete.context.display_paths import display_path, repository_name
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.exclusion import ContentExclusion
from ghostcomplete.context.imports import DefinitionFinder
from ghostcomplete.context.syntax import Scope, completion_scope
from ghostcomplete.postprocess.filters import Surroundings, filtered
from ghostcomplete.ranker.budget import DEFAULT_PROMPT_TOKENS, PackedContext, budget_for, pack
from ghostcomplete.ranker.dense import DenseIndex
from ghostcomplete.ranker.index import SnippetIndex
from ghostcomplete.ranker.line_snippets import LineKey, SnippetsPerLine
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim, snippet_tokens
from ghostcomplete.ranker.redaction import redact_around_cursor
from ghostcomplete.ranker.retrieval import bm25_snippets, imported_definitions
from ghostcomplete.ranker.snippets import (
    LineIdentifierCache,
    Snippet,
    WindowSettings,
    copilot_snippets,
)
from ghostcomplete.ranker.tokens import TokenCounter

log = logging.getLogger("ghostcomplete")

# The FIM format rendered for backends that take a prompt string; the lookup engine reads
# the packed parts instead. Model backends will bring their own family.
DEFAULT_FIM_FAMILY = "starcoder"


@dataclass(frozen=True)
class CompletionRequest:
    document: DocumentSnapshot
    line: int
    character: int
    # Recently used documents of the same language family, most recent first.
    neighbours: Sequence[DocumentSnapshot] = ()
    completion_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # The unit of ``character``: the position encoding negotiated with the client.
    encoding: str = "utf-16"


@dataclass
class CompletionResult:
    completion_id: str
    texts: list[str]
    skipped: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    origins: list[str] = field(default_factory=list)
    # The first candidate's token trace (a model's answer before its cut), for benchmarks.
    trace: TokenTrace | None = None
    # "typing" (typed through a shown suggestion), "inflight" (shared a running generation),
    # "prompt" (same prompt as before) or None (the backend was asked).
    cache: str | None = None
    backend_called: bool = False
    # Answered with the backend's early answer (the lookup's, while the model writes on).
    early: bool = False
    # The rendered prompt (for benchmarks' context coverage); None when none was built.
    prompt: str | None = None
    prompt_tokens: int | None = None
    snippets: tuple[Snippet, ...] = ()
    # The request answered; None for a result made outside a request.
    request: CompletionRequest | None = None
    # Typed by the user or asked for by the editor (an explicit invoke).
    automatic: bool = True
    # The backend kind and the model's name, as configured when the request ran.
    backend: str = ""
    model: str | None = None
    # Superseded by a newer request, or failed: nothing to show, record or report.
    dropped: bool = False
    # What the backend said about its first candidate (Candidate.details: for a model, its
    # prompt_tokens, reused_tokens, prefill_ms, ...); for benchmarks.
    backend_details: dict[str, float] = field(default_factory=dict)

    @property
    def item_ids(self) -> list[str]:
        """The ids of the items made of ``texts``, in order."""
        return [item_id(self.completion_id, index) for index in range(len(self.texts))]

    def record_prompt(self, prompt: CompletionPrompt) -> None:
        self.prompt = prompt.text
        self.prompt_tokens = prompt.context.tokens
        self.snippets = prompt.context.snippets


@dataclass(frozen=True)
class Prepared:
    """A request ready for the backend."""

    prompt: CompletionPrompt
    limits: GenerationLimits
    around: Surroundings


class Pipeline:
    """Stateful only in its caches; every stage it calls is a pure function."""

    def __init__(self, backend: Backend, settings: Settings, roots: Sequence[Path] = ()) -> None:
        self.backend = backend
        self.counter = TokenCounter()
        self.line_cache = LineIdentifierCache()
        self.index = SnippetIndex()
        self.line_snippets = SnippetsPerLine()
        self.definitions = DefinitionFinder()
        self.roots = tuple(roots)
        # Dense retrieval (ranker.dense): None while off or when its model cannot be loaded.
        self.dense: DenseIndex | None = None
        self.dense_problem: str | None = None
        # Told, once per problem, why dense retrieval is off (may be called from a thread).
        self.on_dense_problem: Callable[[str], None] | None = None
        self._dense_settings: DenseSettings | None = None
        self.settings = settings
        self.exclusion = ContentExclusion((), True, self.roots)
        self.disabled_files = ContentExclusion((), respect_gitignore=False, roots=self.roots)
        self.configure(settings)

    def configure(self, settings: Settings, roots: Sequence[Path] | None = None) -> None:
        """Take new settings (and workspace folders): the exclusions are rebuilt, and the dense
        index is restarted when its own settings changed."""
        if roots is not None:
            self.roots = tuple(roots)
        self.settings = settings
        self.line_snippets.clear()
        self.exclusion = ContentExclusion(
            settings.context.exclude, settings.context.respect_gitignore, self.roots
        )
        self.disabled_files = ContentExclusion(
            settings.completion.disabled_files, respect_gitignore=False, roots=self.roots
        )
        if settings.context.dense != self._dense_settings:
            self._dense_settings = settings.context.dense
            self._start_dense(settings.context.dense)

    def _start_dense(self, dense: DenseSettings) -> None:
        """(Re)build the dense index; on a missing or broken model, say so once and go on
        with BM25 only."""
        if self.dense is not None:
            self.dense.close()
        self.dense = None
        self.index.listener = None
        self.dense_problem = None
        if not dense.enabled:
            return
        folder = Path(dense.path).expanduser() if dense.path else default_embedder_path()
        try:
            embedder = OnnxEmbedder(folder, threads=dense.threads, quantized=dense.quantized)
        except EmbedderError as error:
            self._dense_failed(f"dense retrieval is off (BM25 only): {error}")
            return
        self.dense = DenseIndex(
            lambda texts, query: embedder.embed(texts, query=query),
            on_problem=self._dense_failed,
        )
        self.index.listener = self.dense.update
        for uri in self.index.uris:
            self.dense.update(uri, self.index.chunks_of(uri))

    def _dense_failed(self, message: str) -> None:
        self.dense_problem = message
        if self.on_dense_problem is not None:
            self.on_dense_problem(message)
        else:
            log.warning("%s", message)

    def index_for_context(self, document: DocumentSnapshot) -> None:
        """Index a document that may serve as context, if the settings use the index."""
        if self.settings.context.snippets not in ("ranked", "bm25"):
            return
        too_big = document.larger_than(self.settings.context.max_file_bytes)
        if too_big or document.looks_binary or self.exclusion.reason(document.uri) is not None:
            return
        self.index.ensure(document)

    def forget(self, uri: str) -> None:
        self.line_cache.forget(uri)
        self.line_snippets.forget(uri)
        self.index.remove(uri)

    def cut(self, request: CompletionRequest, result: CompletionResult) -> Cursor | None:
        """The cursor, or None with ``result.skipped`` saying why nothing is worth asking for."""
        settings = self.settings
        document = request.document
        if not settings.completion.enabled:
            result.skipped = "completions are disabled"
            return None
        if document.language_id in settings.completion.disabled_languages:
            result.skipped = f"completions are disabled for {document.language_id}"
            return None
        excluded = self.exclusion.reason(document.uri)
        if excluded is not None:
            result.skipped = f"excluded: {excluded}"
            return None
        if settings.completion.disabled_files and self.disabled_files.reason(document.uri):
            result.skipped = "completions are disabled for this file"
            return None
        cursor = cut_at(
            document,
            request.line,
            request.character,
            max_bytes=settings.context.max_file_bytes,
            encoding=request.encoding,
        )
        if isinstance(cursor, Skip):
            result.skipped = cursor.value
            return None
        gate = should_complete(cursor, min_context_chars=settings.completion.min_context_chars)
        if gate is not None:
            result.skipped = gate.value
            return None
        return cursor

    @property
    def prompt_tokens(self) -> int:
        """The prompt's token budget: ``budget.maxTokens``, or where it is 0 (the default) what
        the backend's model reads in time on this machine (backends/onnx/prompt_budget.py),
        else ``DEFAULT_PROMPT_TOKENS``."""
        chosen = self.settings.budget.max_tokens
        if chosen:
            return chosen
        local = getattr(self.backend, "prompt_tokens", None)
        return local if isinstance(local, int) and local > 0 else DEFAULT_PROMPT_TOKENS

    def prepare(
        self, request: CompletionRequest, cursor: Cursor, deadline: float, timings: dict[str, float]
    ) -> Prepared:
        """Context and ranking: everything up to the backend call."""
        settings = self.settings
        document = request.document
        started = time.monotonic()
        scope = completion_scope(document.text, cursor.offset, document.language_id)
        neighbours = [
            n
            for n in request.neighbours[: settings.context.recent_files]
            if not n.looks_binary
            and len(n.text) <= settings.context.max_file_bytes
            and self.exclusion.reason(n.uri) is None
        ]
        mark = time.monotonic()
        timings["context"] = round((mark - started) * 1000, 3)

        snippets = self.snippets_for_line(cursor, neighbours)
        prefix, suffix = cursor.prefix, cursor.suffix
        remote = getattr(self.backend, "remote", True)  # unknown: assume it leaves the machine
        if remote:
            # Each source is redacted whole before the budget cuts it: a trimmed key header
            # must not leave its body behind.
            sources = {n.uri: n.text for n in neighbours} | {document.uri: document.text}
            prefix, suffix, snippets = redact_around_cursor(
                document.text, cursor.offset, snippets, sources
            )
        budget = budget_for(
            scope,
            self.prompt_tokens,
            settings.budget.suffix_share,
            settings.budget.snippet_share,
        )
        path = display_path(document.uri, self.roots)
        family = self.backend.fim_family or DEFAULT_FIM_FAMILY
        paths = {n.uri: display_path(n.uri, self.roots) for n in neighbours}
        for snippet in snippets:
            paths.setdefault(snippet.uri, display_path(snippet.uri, self.roots))
        empty = PackedContext("", "", (), 0)
        repo = repository_name(document.uri, self.roots)
        overhead = self.counter.count(
            render_fim(empty, family, document.language_id, path, repo=repo)
        )
        packed = pack(
            prefix,
            suffix,
            snippets,
            self.counter,
            budget,
            overhead=overhead,
            snippet_cost=lambda snippet: snippet_tokens(
                snippet, document.language_id, paths[snippet.uri], self.counter, family
            ),
        )
        references = tuple(n.text for n in neighbours)
        before, after = cursor.prefix, cursor.suffix
        if remote:  # no whole files leave the machine
            references, before, after = (), "", ""
        prompt = CompletionPrompt(
            language_id=document.language_id,
            path=path,
            context=packed,
            text=render_fim(packed, family, document.language_id, path, paths, repo),
            stop=TEMPLATES[family].stop,
            reference_texts=references,
            before_cursor=before,
            after_cursor=after,
            paths=paths,
            repo=repo,
        )
        max_lines = settings.completion.max_block_lines if scope is Scope.BLOCK else 1
        limits = GenerationLimits(
            scope=scope,
            max_chars=settings.completion.max_chars,
            max_lines=max_lines,
            candidates=settings.completion.candidates,
            deadline=deadline,
        )
        around = Surroundings.at(cursor.prefix, cursor.suffix, scope, max_lines)
        timings["rank"] = round((time.monotonic() - mark) * 1000, 3)
        return Prepared(prompt, limits, around)

    def snippets_for_line(
        self, cursor: Cursor, neighbours: Sequence[DocumentSnapshot]
    ) -> list[Snippet]:
        """The snippets chosen when the cursor came to its line, while the user types on it
        (ranker/line_snippets.py: the prompt's start then stays the same for the KV cache)."""
        key = LineKey.of(cursor.document.uri, cursor.prefix, cursor.suffix, neighbours)
        kept = self.line_snippets.get(key)
        if kept is not None:
            return kept
        chosen = self.choose_snippets(cursor, neighbours)
        self.line_snippets.put(key, chosen)
        return chosen

    def choose_snippets(
        self, cursor: Cursor, neighbours: Sequence[DocumentSnapshot]
    ) -> list[Snippet]:
        """Context from other files, by the method ``context.snippets`` names."""
        settings = self.settings.context
        mode = settings.snippets
        if mode == "none" or settings.max_snippets == 0:
            return []
        if mode == "copilot":
            window = WindowSettings(settings.window_lines, settings.max_snippets, 0.0)
            return copilot_snippets(cursor.prefix, neighbours, self.line_cache, window)
        document = cursor.document
        definitions: list[Snippet] = []
        if mode in ("ranked", "imports"):
            definitions = imported_definitions(
                document.uri,
                document.language_id,
                document.text,
                cursor.prefix,
                self.definitions,
                self.roots,
                self.exclusion,
                settings.max_snippets,
            )
        windows: list[Snippet] = []
        if mode == "ranked" and settings.similar_window_lines:
            window = WindowSettings(settings.similar_window_lines, 1, 0.0)
            windows = [
                dataclasses.replace(found, kind="window")
                for found in copilot_snippets(cursor.prefix, neighbours, self.line_cache, window)
            ]
        chunks: list[Snippet] = []
        if mode in ("ranked", "bm25"):
            for neighbour in neighbours:
                self.index.ensure(neighbour)
            dense = self.dense if self.dense is not None and self.dense.problem is None else None
            chunks = bm25_snippets(
                cursor.prefix,
                cursor.suffix,
                self.index,
                [n.uri for n in neighbours],
                settings.max_snippets,
                definitions + windows,
                dense,
            )
        return definitions + windows + chunks

    def result_for(
        self, request: CompletionRequest, automatic: bool = True, skipped: str | None = None
    ) -> CompletionResult:
        """An empty result for ``request``, naming the backend and model that answer it."""
        result = CompletionResult(request.completion_id, [], skipped, request=request)
        result.automatic = automatic
        result.backend = self.settings.backend.kind
        result.model = getattr(self.backend, "name", None)
        return result

    def finish(
        self, prepared: Prepared, candidates: list[Candidate], result: CompletionResult
    ) -> None:
        """Post-processing: the named filters of postprocess/filters.py."""
        started = time.monotonic()
        kept = filtered([c.text for c in candidates], prepared.around)
        result.texts = [text for text, _ in kept]
        result.origins = [candidates[index].origin for _, index in kept]
        result.backend_details = dict(candidates[0].details) if candidates else {}
        result.trace = candidates[0].trace if candidates else None
        result.timings_ms["filter"] = round((time.monotonic() - started) * 1000, 3)

    async def complete(self, request: CompletionRequest) -> CompletionResult:
        """One completion with no caches, debounce or sharing (the ``complete`` CLI)."""
        started = time.monotonic()
        deadline = started + self.settings.deadline_ms / 1000
        result = self.result_for(request)
        cursor = self.cut(request, result)
        if cursor is None:
            return result
        prepared = self.prepare(request, cursor, deadline, result.timings_ms)
        result.record_prompt(prepared.prompt)
        mark = time.monotonic()
        candidates = await self.backend.generate(prepared.prompt, prepared.limits)
        result.timings_ms["backend"] = round((time.monotonic() - mark) * 1000, 3)
        self.finish(prepared, candidates, result)
        result.timings_ms["total"] = round((time.monotonic() - started) * 1000, 3)
        return result
