"""Our cross-file context: tree-sitter chunks, the BM25 index, import-aware definitions,
and packing that keeps the rendered prompt within the budget."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.exclusion import ContentExclusion
from ghostcomplete.context.imports import (
    IMPORT_LINE,
    DefinitionFinder,
    ImportedName,
    imports_of,
    js_imports,
    names_used_near,
    python_imports,
    resolve_module,
)
from ghostcomplete.ranker.budget import Budget, PackedContext, pack
from ghostcomplete.ranker.chunks import chunk_spans
from ghostcomplete.ranker.identifiers import identifiers
from ghostcomplete.ranker.index import SnippetIndex
from ghostcomplete.ranker.prompt import TEMPLATES, render_fim, snippet_tokens
from ghostcomplete.ranker.retrieval import (
    bm25_snippets,
    imported_definitions,
    imported_not_yet_used,
    names_unused,
)
from ghostcomplete.ranker.snippets import Snippet
from ghostcomplete.ranker.tokens import TokenCounter

pytestmark = pytest.mark.timeout(30)

PY = '''"""Billing."""

import os


def charge(customer, amount):
    """Charge a customer."""
    return gateway.charge(customer.card, amount)


class Invoice:
    """An invoice."""

    number: str
    total_cents: int

    def add_line(self, item, price):
        self.lines.append((item, price))

    def total(self):
        return sum(price for _, price in self.lines)
'''


def test_chunks_follow_definitions() -> None:
    spans = chunk_spans(PY, "python")
    units = [PY.split("\n")[s.start] for s in spans if s.kind == "unit"]
    assert "def charge(customer, amount):" in units
    assert "class Invoice:" in units
    assert all(s.end > s.start for s in spans)


def test_long_class_is_split_into_methods() -> None:
    methods = "".join(f"    def m{i}(self):\n        return {i}\n\n" for i in range(40))
    text = "class Big:\n    x = 1\n\n" + methods
    spans = chunk_spans(text, "python")
    lines = text.split("\n")
    assert lines[spans[0].start] == "class Big:" and spans[0].end <= 13
    assert sum(1 for s in spans if lines[s.start].startswith("    def m")) == 40


def test_unknown_language_gets_windows() -> None:
    spans = chunk_spans("\n".join(f"line {i}" for i in range(50)), "plaintext")
    assert spans[0].start == 0 and spans[0].end == 20 and spans[1].start == 10


def doc(uri: str, text: str, version: int = 1) -> DocumentSnapshot:
    return DocumentSnapshot(uri, "python", text, version)


def test_bm25_index_ranks_rare_terms_and_updates_incrementally() -> None:
    index = SnippetIndex()
    billing = doc("file:///billing.py", PY)
    other = doc("file:///other.py", "def unrelated(a, b):\n    return a + b\n")
    assert index.ensure(billing) and index.ensure(other)
    assert not index.ensure(billing)  # unchanged: not re-tokenized
    found = index.search(Counter(["total_cents", "invoice"]), [billing.uri, other.uri], 4)
    assert found and "class Invoice" in found[0][1].text
    chunks_before = index.chunks
    index.ensure(
        dataclasses.replace(billing, text=PY + "\ndef refund(x):\n    return x\n", version=2)
    )
    assert index.chunks == chunks_before + 1
    index.remove(billing.uri)
    assert index.files == 1
    assert index.search(Counter(["total_cents"]), [billing.uri], 4) == []


def test_index_evicts_least_recently_used_files() -> None:
    index = SnippetIndex(max_files=2)
    for name in ("a", "b", "c"):
        index.ensure(doc(f"file:///{name}.py", f"def {name}_function():\n    pass\n"))
    assert index.files == 2
    assert index.search(Counter(["a_function"]), ["file:///a.py"], 4) == []


def test_bm25_snippets_hygiene() -> None:
    index = SnippetIndex()
    copy_a = doc("file:///a.py", PY)
    copy_b = doc("file:///b.py", PY)  # a near-duplicate of a.py
    index.ensure(copy_a)
    index.ensure(copy_b)
    prefix = "invoice = Invoice()\ninvoice.add_line(item, price)\ninvoice.total_cents"
    found = bm25_snippets(prefix, "", index, [copy_a.uri, copy_b.uri], 4)
    texts = [s.text for s in found]
    assert len(texts) == len(set(texts))  # no duplicates across the two copies
    assert sum(1 for s in found if s.uri == copy_a.uri) <= 2


def test_bm25_skips_chunks_in_the_place_of_a_window_taken() -> None:
    index = SnippetIndex()
    billing = doc("file:///billing.py", PY)
    index.ensure(billing)
    prefix = "invoice = Invoice()\ninvoice.add_line(item, price)\ninvoice.total_cents"
    found = bm25_snippets(prefix, "", index, [billing.uri], 4)
    invoice = next(s for s in found if "class Invoice" in s.text)
    lines = PY.split("\n")
    # A window of the file's lines that overlaps the class (its last two lines and on).
    start = invoice.start_line + invoice.text.count("\n") - 1
    window = Snippet(billing.uri, start, "\n".join(lines[start : start + 5]), 0.5, "window")
    assert all(
        "class Invoice" not in s.text
        for s in bm25_snippets(prefix, "", index, [billing.uri], 4, [window])
    )
    # One that ends before the class leaves it to BM25.
    above = Snippet(billing.uri, 0, "\n".join(lines[: invoice.start_line]), 0.5, "window")
    assert any(
        "class Invoice" in s.text
        for s in bm25_snippets(prefix, "", index, [billing.uri], 4, [above])
    )


def test_import_parsing() -> None:
    assert python_imports("from .models import Product as P, Supplier\nimport pkg.util\n") == [
        ImportedName("P", "models", "Product", 1),
        ImportedName("Supplier", "models", "Supplier", 1),
        ImportedName("pkg", "pkg", None),
    ]
    assert js_imports("import Foo, { bar as baz } from './foo';\nimport x from 'react';") == [
        ImportedName("baz", "./foo", "bar"),
        ImportedName("Foo", "./foo", "default"),
    ]
    assert names_used_near("a = 1\nb = shop.cart(", 1) == ["shop.cart", "b"]


def workspace(tmp_path: Path) -> Path:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "billing.py").write_text(PY)
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "cart.ts").write_text(
        "export function addItem(cart: Cart, sku: string, quantity: number): Cart {\n"
        "  return { ...cart };\n}\n"
        "export class Cart {\n  items: string[] = [];\n"
        "  clear(): void {\n    this.items = [];\n  }\n}\n"
    )
    return tmp_path


def test_resolve_modules(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    importer = root / "app.py"
    found = resolve_module(importer, ImportedName("x", "shop.billing", "x"), "python", (root,))
    assert found == root / "shop" / "billing.py"
    relative = root / "shop" / "views.py"
    assert resolve_module(relative, ImportedName("x", "billing", "x", 1), "python", (root,)) == (
        root / "shop" / "billing.py"
    )
    ts = root / "web" / "page.ts"
    assert resolve_module(ts, ImportedName("a", "./cart", "a"), "typescript", (root,)) == (
        root / "web" / "cart.ts"
    )
    assert resolve_module(importer, ImportedName("x", "nowhere", "x"), "python", (root,)) is None


def test_definition_signatures(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    finder = DefinitionFinder()
    line, invoice = finder.signature(root / "shop" / "billing.py", "Invoice", "python")  # type: ignore[misc]
    assert line == 10
    assert invoice.split("\n") == [
        "class Invoice:",
        '    """An invoice."""',
        "    number: str",
        "    total_cents: int",
        "    def add_line(self, item, price): ...",
        "    def total(self): ...",
    ]
    _, charge = finder.signature(root / "shop" / "billing.py", "charge", "python")  # type: ignore[misc]
    assert charge.startswith("def charge(customer, amount):\n") and "gateway" not in charge
    _, add_item = finder.signature(root / "web" / "cart.ts", "addItem", "typescript")  # type: ignore[misc]
    assert add_item.startswith("function addItem(cart: Cart, sku: string, quantity: number): Cart")


def test_imported_definitions_for_names_used_near_the_cursor(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    app = root / "app.py"
    text = "from shop.billing import Invoice, charge\nimport shop.billing\n\ninvoice = Invoice("
    found = imported_definitions(
        app.as_uri(), "python", text, text, DefinitionFinder(), (root,), ContentExclusion(), 4
    )
    # Invoice is used before the cursor; charge is imported and not used yet, so it is
    # likely to be what comes next.
    assert [s.text.split("\n")[0] for s in found] == [
        "class Invoice:",
        "def charge(customer, amount):",
    ]
    text2 = "import shop.billing as billing\n\nbilling.charge("
    found2 = imported_definitions(
        app.as_uri(), "python", text2, text2, DefinitionFinder(), (root,), ContentExclusion(), 4
    )
    assert [s.text.split("\n")[0] for s in found2] == ["def charge(customer, amount):"]
    excluded = ContentExclusion(["shop/"], respect_gitignore=False, roots=[root])
    assert not imported_definitions(
        app.as_uri(), "python", text, text, DefinitionFinder(), (root,), excluded, 4
    )


def test_imported_names_not_yet_used() -> None:
    text = (
        "from shop.billing import Invoice, charge, refund\n"
        "import os\n"
        "from .tax import rate as vat\n\n"
        "def total(invoice):\n    return charge(invoice) * vat\n\n"
        "refunded = "
    )
    assert imported_not_yet_used(imports_of(text, "python"), text) == ["Invoice", "refund"]
    js = "const { addItem, clear } = require('./cart');\nimport Cart from './cart';\naddItem("
    assert sorted(imported_not_yet_used(imports_of(js, "javascript"), js)) == ["Cart", "clear"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "from a import charge, vat",
                "import x",
                "y = charge(1)",
                "vatx = 2",
                "# x",
                "",
                "charges = []",
                "a.vat",
                "$x = 1",
                "const x = require('x')",
            ]
        ),
        max_size=8,
    ),
)
def test_names_unused_agrees_with_a_line_by_line_regex(rows: list[str]) -> None:
    text = "\n".join(rows)
    names = ["charge", "vat", "x", "vatx"]
    expected = set()
    for name in names:
        word = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
        if not any(word.search(row) for row in rows if not IMPORT_LINE.match(row)):
            expected.add(name)
    assert names_unused(names, text) == expected


lines = st.lists(st.text(alphabet="abc xyz_()=:.\t", max_size=40), max_size=60)


@settings(max_examples=40, deadline=None)
@given(
    lines,
    lines,
    st.lists(lines, max_size=4),
    st.integers(40, 400),
    st.sampled_from(sorted(TEMPLATES)),
)
def test_rendered_prompt_fits_the_budget(prefix_lines, suffix_lines, snippet_lines, budget, family):
    counter = TokenCounter()
    prefix, suffix = "\n".join(prefix_lines), "\n".join(suffix_lines)
    snippets = [
        Snippet(f"file:///s{i}.py", 0, "\n".join(x), 1.0) for i, x in enumerate(snippet_lines)
    ]
    empty = PackedContext("", "", (), 0)
    overhead = counter.count(render_fim(empty, family, "python", "a.py", repo="shop"))
    packed = pack(
        prefix,
        suffix,
        snippets,
        counter,
        Budget(max_tokens=budget),
        overhead=overhead,
        snippet_cost=lambda s: snippet_tokens(s, "python", s.uri, counter, family),
    )
    rendered = render_fim(
        packed, family, "python", "a.py", {s.uri: s.uri for s in snippets}, repo="shop"
    )
    assert counter.count(rendered) <= max(budget, overhead)
    assert prefix.endswith(packed.prefix) and suffix.startswith(packed.suffix)


def test_a_suffix_that_merges_with_the_markers_still_fits() -> None:
    # Found by the property above: ":" between "<|fim_suffix|>" and "<|fim_middle|>"
    # tokenizes into one more token than the parts counted apart.
    counter = TokenCounter()
    empty = PackedContext("", "", (), 0)
    overhead = counter.count(render_fim(empty, "codegemma", "python", "a.py", repo="shop"))
    prefix = "a\n:::\t:::\t:z:__= \t"
    packed = pack(prefix, ":", [], counter, Budget(max_tokens=40), overhead=overhead)
    rendered = render_fim(packed, "codegemma", "python", "a.py", {}, repo="shop")
    assert counter.count(rendered) <= 40


_IMPORT_PIECES = st.sampled_from(
    ["import", "from", " ", "\t", "\n", "x", "os.path", ".", "..", ",", "(", ")", "#", " as ", "y"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_IMPORT_PIECES, max_size=40).map("".join))
def test_import_scan_finds_what_the_regexes_find_over_the_whole_text(text: str) -> None:
    from ghostcomplete.context import imports

    def spans(matches):
        return [m.span() for m in matches]

    starts = imports._lines_with(text, "import")
    for pattern in (imports._PY_FROM, imports._PY_IMPORT):
        scanned = imports._line_matches(pattern, text, starts)
        assert spans(scanned) == spans(pattern.finditer(text))


def test_bm25_search_ranks_like_the_formula(tmp_path: Path) -> None:
    """The numpy BM25 against the formula written out, on a small index."""
    import math

    index = SnippetIndex()
    texts = {
        "a.py": "def parse_config(path):\n    return load(path)\n",
        "b.py": "def load(path):\n    with open(path) as f:\n        return parse(f)\n",
        "c.py": "class Config:\n    path = None\n    def parse(self):\n        return self.path\n",
        "d.py": "def render(page):\n    return template.format(page)\n",
        "e.py": "def send(message, socket):\n    socket.write(message)\n",
        "f.py": "def total(values):\n    return sum(values) / len(values)\n",
    }
    uris = []
    for name, text in texts.items():
        uri = (tmp_path / name).as_uri()
        uris.append(uri)
        index.ensure(DocumentSnapshot(uri, "python", text, 1))
    query = Counter({"parse": 2, "path": 1, "load": 1})
    found = index.search(query, uris, 10)
    chunks = [chunk for _, chunk in found]
    assert len(found) >= 2 and found == sorted(found, key=lambda item: -item[0])
    count = index.chunks
    lengths = {c: c.length for c in chunks}
    average = sum(chunk.length for uri in uris for chunk in index.chunks_of(uri)) / count
    for score, chunk in found:
        expected = 0.0
        for term, query_count in query.items():
            having = [c for uri in uris for c in index.chunks_of(uri) if term in c.terms]
            if not having or len(having) > count * 0.5 or term not in chunk.terms:
                continue
            idf = math.log(1 + (count - len(having) + 0.5) / (len(having) + 0.5))
            tf = Counter(identifiers(chunk.text))[term]
            norm = 1.2 * (1 - 0.75 + 0.75 * lengths[chunk] / average)
            expected += idf * (1 + math.log(query_count)) * 2.2 * tf / (tf + norm)
        assert score == pytest.approx(expected)
    # Restricted to one file: only its chunks, same scores.
    only_b = index.search(query, [uris[1]], 10)
    assert [c.uri for _, c in only_b] == [uris[1]] * len(only_b)
    assert only_b == [(s, c) for s, c in found if c.uri == uris[1]]
