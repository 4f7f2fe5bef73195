"""Our snippet choice: definitions of imported names, then BM25 chunks.

With dense retrieval on (``ranker.dense``), the chunks are BM25's ranking and the embedding
model's ranking fused by reciprocal rank fusion, as Tabby's server fuses them.

Definitions come first: when the cursor is about to use an API from another file, its
signature is the context that helps most. The names used in the lines before the cursor come
first, nearest first, then the imported names not used yet, which the line being typed may be
the first use of. BM25 over tree-sitter units of the recent files
fills the rest. Hygiene: at most two chunks per file, no near-duplicates, nothing that repeats
a definition already chosen.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ghostcomplete.context.exclusion import ContentExclusion, path_of_uri
from ghostcomplete.context.imports import (
    IMPORT_LINE,
    DefinitionFinder,
    ImportedName,
    imports_of,
    names_used_near,
    resolve_module,
)
from ghostcomplete.ranker.dense import DenseIndex
from ghostcomplete.ranker.identifiers import identifiers
from ghostcomplete.ranker.index import Chunk, SnippetIndex
from ghostcomplete.ranker.snippets import Snippet

_QUERY_LINES = 20
_SUFFIX_QUERY_LINES = 4
_MAX_PER_FILE = 2
_NEAR_DUPLICATE = 0.8
_DEFINITION_SCORE = 1000.0
_IMPORT_SCAN_CHARS = 50_000
# How far back a name's use is looked for before its definition counts as "not used yet".
_USE_SCAN_CHARS = 200_000
# Reciprocal rank fusion: a chunk's score is the sum of 1 / (RRF_K + rank) over the rankings
# (rank 1 = best); 60 is the constant of Cormack et al. and of Tabby.
RRF_K = 60

Item = TypeVar("Item", bound=Hashable)


@dataclass(frozen=True)
class RetrievalSettings:
    max_snippets: int = 4
    max_definitions: int = 4
    use_imports: bool = True
    use_bm25: bool = True


def imported_definitions(
    uri: str,
    language_id: str,
    text: str,
    prefix: str,
    finder: DefinitionFinder,
    roots: tuple[Path, ...],
    exclusion: ContentExclusion,
    limit: int,
) -> list[Snippet]:
    """Signatures of the imported names used in the lines before the cursor, nearest first,
    then of those not used yet."""
    importer = path_of_uri(uri)
    if importer is None:
        return []
    imported = _imports_cached(uri, language_id, text[:_IMPORT_SCAN_CHARS])
    if not imported:
        return []
    by_local: dict[str, ImportedName] = {item.local: item for item in imported}
    found: list[Snippet] = []
    seen: set[tuple[Path, str]] = set()
    for used in _candidate_names(imported, prefix):
        head, _, attribute = used.partition(".")
        item = by_local.get(head)
        if item is None:
            continue
        if item.name is None:  # `import module` used as module.attribute
            module, name = item, attribute
        else:
            module, name = item, item.name
        if not name:
            continue
        path = resolve_module(importer, module, language_id, roots)
        if path is None and item.name is not None:
            # `from package import module`: the name may be a module itself.
            nested = ImportedName(
                item.local, f"{item.module}.{item.name}".strip("."), None, item.level
            )
            path = resolve_module(importer, nested, language_id, roots)
            name = attribute
            if not name:
                continue
        if path is None or (path, name) in seen:
            continue
        if exclusion.reason(path.as_uri()) is not None:
            continue
        seen.add((path, name))
        signature = finder.signature(path, name, language_id)
        if signature is None:
            continue
        line, text_of_signature = signature
        found.append(
            Snippet(
                path.as_uri(), line, text_of_signature, _DEFINITION_SCORE - len(found), "signature"
            )
        )
        if len(found) >= limit:
            break
    return found


def _candidate_names(imported: Sequence[ImportedName], prefix: str) -> Iterator[str]:
    """The names used near the cursor, then the imported names not used yet: the second
    list reads far back into the file, so it is made only when the first did not fill the
    definitions."""
    yield from names_used_near(prefix)
    yield from imported_not_yet_used(imported, prefix)


def imported_not_yet_used(imported: Sequence[ImportedName], prefix: str) -> list[str]:
    """Names imported by name that no line before the cursor (in its last
    ``_USE_SCAN_CHARS``) uses yet, in the order the imports are read: a name is imported to
    be used, so the code being typed is often its first use."""
    names = [item.local for item in imported if item.name is not None]
    unused = names_unused(names, prefix[-_USE_SCAN_CHARS:])
    return [name for name in names if name in unused]


def names_unused(names: Sequence[str], text: str) -> set[str]:
    """Those of ``names`` that occur as a whole word on no line of ``text`` but import lines.
    One pass of the regex engine for all names; Python looks only at whole-word occurrences."""
    unused = set(names)
    if not unused:
        return unused
    alternatives = "|".join(re.escape(name) for name in sorted(unused, key=len, reverse=True))
    word = re.compile(rf"(?<![\w$])(?:{alternatives})(?![\w$])")
    match = word.search(text)
    while match is not None and unused:
        start = text.rfind("\n", 0, match.start()) + 1
        stop = text.find("\n", match.end())
        stop = len(text) if stop < 0 else stop
        if IMPORT_LINE.match(text, start, stop):
            match = word.search(text, stop)
            continue
        unused.discard(match.group(0))
        match = word.search(text, match.end())
    return unused


_IMPORTS_CACHE: OrderedDict[tuple[str, str, int], list[ImportedName]] = OrderedDict()


def _imports_cached(uri: str, language_id: str, head: str) -> list[ImportedName]:
    """The imports of a file's head; re-read only when the head's text changed."""
    key = (uri, language_id, hash(head))
    found = _IMPORTS_CACHE.get(key)
    if found is None:
        found = imports_of(head, language_id)
        _IMPORTS_CACHE[key] = found
        if len(_IMPORTS_CACHE) > 256:
            _IMPORTS_CACHE.popitem(last=False)
    return found


def query_text(prefix: str, suffix: str) -> str:
    """The text around the cursor that chunks are ranked against (BM25 and dense alike)."""
    text = "\n".join(prefix.split("\n")[-_QUERY_LINES:])
    return text + "\n" + "\n".join(suffix.split("\n")[:_SUFFIX_QUERY_LINES])


def bm25_snippets(
    prefix: str,
    suffix: str,
    index: SnippetIndex,
    uris: Sequence[str],
    limit: int,
    taken: Sequence[Snippet] = (),
    dense: DenseIndex | None = None,
) -> list[Snippet]:
    """The best chunks of ``uris`` for the text around the cursor, with the hygiene rules;
    with ``dense``, BM25's and the embeddings' rankings fused."""
    text = query_text(prefix, suffix)
    ranked = index.search(Counter(identifiers(text)), uris, limit)
    if dense is not None:
        vector = dense.query_vector(text)
        if vector is not None:
            nearest = dense.search(vector, uris, limit * 4)
            ranked = _fused([c for _, c in ranked], [c for _, c in nearest])
    return _with_hygiene(ranked, limit, taken)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Item]], k: int = RRF_K
) -> list[tuple[float, Item]]:
    """Items of all ``rankings`` (best first each) by their summed 1 / (k + rank), best
    first; ties keep the order in which items were first met."""
    scores: dict[Item, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(((score, item) for item, score in scores.items()), key=lambda p: -p[0])


def _fused(bm25: Sequence[Chunk], dense: Sequence[Chunk]) -> list[tuple[float, Chunk]]:
    by_key: dict[tuple[str, int, int], Chunk] = {}
    rankings: list[list[tuple[str, int, int]]] = []
    for ranking in (bm25, dense):
        keys: list[tuple[str, int, int]] = []
        for chunk in ranking:
            key = (chunk.uri, chunk.start_line, chunk.end_line)
            by_key.setdefault(key, chunk)
            keys.append(key)
        rankings.append(keys)
    return [(score, by_key[key]) for score, key in reciprocal_rank_fusion(rankings)]


def _with_hygiene(
    ranked: Sequence[tuple[float, Chunk]], limit: int, taken: Sequence[Snippet]
) -> list[Snippet]:
    """At most two chunks per file, none in the place of a snippet taken already, no
    near-duplicates."""
    chosen: list[Snippet] = []
    chosen_terms: list[frozenset[str]] = []
    per_file: Counter[str] = Counter()
    for score, chunk in ranked:
        if len(chosen) >= limit:
            break
        if per_file[chunk.uri] >= _MAX_PER_FILE:
            continue
        if any(_holds_place_of(s, chunk) for s in taken):
            continue
        if any(_jaccard(chunk.terms, other) >= _NEAR_DUPLICATE for other in chosen_terms):
            continue
        chosen.append(Snippet(chunk.uri, chunk.start_line, chunk.text, score))
        chosen_terms.append(chunk.terms)
        per_file[chunk.uri] += 1
    return chosen


def _holds_place_of(snippet: Snippet, chunk: Chunk) -> bool:
    """Whether ``snippet``, chosen already, stands for ``chunk``: a definition that starts in
    it (a summary of its lines), or a window of the file's lines that overlaps it."""
    if snippet.uri != chunk.uri:
        return False
    if snippet.kind == "window":
        end = snippet.start_line + snippet.text.count("\n") + 1
        return chunk.start_line < end and snippet.start_line < chunk.end_line
    return chunk.start_line <= snippet.start_line < chunk.end_line


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0
