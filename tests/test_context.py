"""Cursor positions, the should-we-complete gate, recent files and syntax facts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghostcomplete.context.cursor import Skip, cut_at, should_complete
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.context.positions import offset_at, position_at, prefix_of_utf16_length
from ghostcomplete.context.recent_files import RecentFiles
from ghostcomplete.context.syntax import Scope, completion_scope, parser_for, supported_languages


def doc(text: str, language_id: str = "python") -> DocumentSnapshot:
    return DocumentSnapshot("file:///w/a.py", language_id, text)


def test_offsets_count_utf16_units() -> None:
    text = "a😀b\nxyz"
    assert offset_at(text, 0, 0) == 0
    assert offset_at(text, 0, 1) == 1
    assert offset_at(text, 0, 2) is None  # between the surrogate halves
    assert offset_at(text, 0, 3) == 2
    assert offset_at(text, 0, 4) == 3
    assert offset_at(text, 1, 3) == 7
    assert offset_at(text, 1, 4) is None
    assert offset_at(text, 2, 0) is None
    assert offset_at(text, -1, 0) is None


def test_offsets_in_other_position_encodings() -> None:
    text = "é😀b"
    assert offset_at(text, 0, 2, "utf-8") == 1  # é is two bytes
    assert offset_at(text, 0, 1, "utf-8") is None
    assert offset_at(text, 0, 6, "utf-8") == 2  # 😀 is four bytes
    assert offset_at(text, 0, 4, "utf-8") is None
    assert offset_at(text, 0, 2, "utf-32") == 2
    assert offset_at(text, 0, 3, "utf-32") == 3


def test_crlf_line_end_is_not_part_of_the_line() -> None:
    assert offset_at("ab\r\ncd", 0, 2) == 2
    assert offset_at("ab\r\ncd", 0, 3) is None
    assert offset_at("ab\r\ncd", 1, 1) == 5
    # A lone CR is a line break too (LSP: LF, CRLF, CR).
    assert offset_at("ab\r", 0, 3) is None
    assert offset_at("ab\r", 1, 0) == 3
    assert offset_at("ab\rcd\ne", 1, 2) == 5
    assert offset_at("ab\rcd\ne", 2, 1) == 7


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_position_round_trip(text: str) -> None:
    for offset in range(len(text) + 1):
        line, character = position_at(text, offset)
        if text[max(0, offset - 1) : offset] == "\r" and text[offset : offset + 1] == "\n":
            continue  # inside a CRLF: no LSP position
        assert offset_at(text, line, character) == offset


def test_prefix_of_utf16_length() -> None:
    assert prefix_of_utf16_length("a😀b", 1) == "a"
    assert prefix_of_utf16_length("a😀b", 2) == "a"
    assert prefix_of_utf16_length("a😀b", 3) == "a😀"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x = 1\nresult = compute(║)", None),
        ("x = 1\nresult = comp║ute()", Skip.MID_WORD),
        ("x = 1\nresult = ║value + 1", Skip.TEXT_AFTER_CURSOR),
        ("x = ║", Skip.TOO_LITTLE_CONTEXT),
        ("value_total = price ║ ;", None),
    ],
)
def test_should_complete(text: str, reason: Skip | None) -> None:
    before, after = text.split("║")
    cursor = cut_at(doc(before + after), *position_at(before + after, len(before)), max_bytes=10**6)
    assert not isinstance(cursor, Skip)
    assert should_complete(cursor) == reason


def test_cut_at_refuses_binary_and_large() -> None:
    assert cut_at(doc("\x00\x01 binary"), 0, 0, max_bytes=10**6) is Skip.BINARY
    assert cut_at(doc("x" * 2000), 0, 0, max_bytes=1000) is Skip.TOO_LARGE
    assert cut_at(doc("abc"), 3, 0, max_bytes=1000) is Skip.POSITION_INVALID


def test_recent_files_are_per_family_most_recent_first() -> None:
    recent = RecentFiles()
    recent.touch("file:///a.py", "python")
    recent.touch("file:///b.ts", "typescript")
    recent.touch("file:///c.py", "python")
    recent.touch("file:///d.jsx", "javascriptreact")
    recent.touch("untitled:Untitled-1", "python")  # not a local file
    recent.touch("file:///a.py", "python")
    assert recent.recent("python", exclude="file:///x.py", limit=20) == [
        "file:///a.py",
        "file:///c.py",
    ]
    assert recent.recent("javascript", exclude="", limit=20) == ["file:///d.jsx", "file:///b.ts"]
    assert recent.recent("python", exclude="file:///a.py", limit=1) == ["file:///c.py"]
    recent.forget("file:///c.py")
    assert recent.recent("python", exclude="", limit=20) == ["file:///a.py"]


def test_all_grammars_load_offline() -> None:
    for language in ("python", "javascript", "typescript", "go", "rust", "java", "c", "cpp"):
        assert language in supported_languages()
        assert parser_for(language) is not None, language
    assert parser_for("cobol") is None


@pytest.mark.parametrize(
    ("language", "text", "scope"),
    [
        ("python", "class A:\n    def f(self):\n        ║\n\nx = 1\n", Scope.BLOCK),
        ("python", "def f(self):\n    ║", Scope.BLOCK),
        # A new method above another: Python's empty body is zero-width, the class's covers.
        (
            "python",
            "class A:\n    def f(self):\n        ║\n\n    def g(self):\n        return 1\n",
            Scope.BLOCK,
        ),
        (
            "python",
            "def t():\n    def hook(a):\n        ║\n\n    @wrap(hook)\n    class C:\n        x = 1",
            Scope.BLOCK,
        ),
        (
            "python",
            "class A:\n    def f(self):\n        return 1\n    ║\n\n    def g(self):\n        pass",
            Scope.LINE,
        ),
        (
            "python",
            "class A:\n    def f(self):\n    ║\n    def g(self):\n        pass\n",
            Scope.LINE,
        ),
        ("python", "if x:\n    ║\nelse:\n    y = 1\n", Scope.BLOCK),
        ("python", "def f(self):\n    x = 1\n    ║\n", Scope.LINE),
        ("python", "def f(self):\n    x = ║", Scope.LINE),
        ("javascript", "function f(a) {\n  ║\n}\n", Scope.BLOCK),
        ("javascript", "function f(a) {\n  let x = 1;\n  ║\n}\n", Scope.LINE),
        ("typescript", "function f(): number {\n  ║\n}\n", Scope.BLOCK),
        ("go", "package m\nfunc f() int {\n\t║\n}\n", Scope.BLOCK),
        ("rust", "fn f() -> i32 {\n    ║\n}\n", Scope.BLOCK),
        ("java", "class A { int f() {\n    ║\n  }\n}\n", Scope.BLOCK),
        ("c", "int f(void) {\n    ║\n}\n", Scope.BLOCK),
        ("cpp", "int f() {\n    ║\n}\n", Scope.BLOCK),
        ("plaintext", "def f():\n    ║", Scope.LINE),
    ],
)
def test_completion_scope(language: str, text: str, scope: Scope) -> None:
    offset = text.index("║")
    assert completion_scope(text.replace("║", ""), offset, language) is scope


@pytest.mark.parametrize(("body", "scope"), [("", Scope.BLOCK), ("        return 0\n", Scope.LINE)])
def test_completion_scope_deep_in_a_long_class(body: str, scope: Scope) -> None:
    """The parse window (300 lines up) starts inside the class, at an indented line."""
    methods = "".join(
        f'    def m{i}(self, value):\n        """Doc\nat column 0."""\n        return {i}\n\n'
        for i in range(120)
    )
    new = f"    @property\n    def new(self) -> int:\n{body}        ║\n\n"
    text = f"class Big:\n{methods}{new}    def last(self):\n        return 1\n"
    offset = text.index("║")
    assert completion_scope(text.replace("║", ""), offset, "python") is scope


def test_completion_scope_deep_in_a_long_javascript_class() -> None:
    """300 lines up is inside the class, and a line at column 0 is inside a template string."""
    methods = "".join(
        f"  /**\n   * Method {i}.\n   */\n  m{i}(v) {{\n    return `one\nTwo ${{v}}`;\n  }}\n\n"
        for i in range(120)
    )
    new = "  action(fn) {\n    ║\n  }\n\n"
    text = f"class Big {{\n{methods}{new}  last() {{\n    return `x`;\n  }}\n}}\n"
    offset = text.index("║")
    assert completion_scope(text.replace("║", ""), offset, "javascript") is Scope.BLOCK
