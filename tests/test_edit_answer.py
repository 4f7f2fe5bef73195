"""Edit requests, the pure parts: the prompt, reading the answer, re-indenting, the smallest
edit (edit/prompt.py, edit/answer.py)."""

from __future__ import annotations

import pytest

from ghostcomplete.edit.answer import (
    AnswerProblem,
    Change,
    extract_code,
    fit_to_selection,
    minimal_change,
    position_of,
)
from ghostcomplete.edit.prompt import (
    EditContext,
    fence_for,
    redacted,
    render_edit_messages,
    surroundings,
)
from ghostcomplete.ranker.snippets import Snippet

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ("```python\nx = 1\n```", "x = 1"),
        ("Here is the updated code:\n\n```py\nx = 1\ny = 2\n```\n\nI added y.", "x = 1\ny = 2"),
        ("x = 1\n", "x = 1\n"),
        ("Sure! Here you go:\nx = 1", "x = 1"),
        ("Use `x`:\n```\nx\n```\nand the full code:\n```python\nx = 1\ny = 2\n```", "x = 1\ny = 2"),
        ("````markdown\n```python\nx\n```\n````", "```python\nx\n```"),
        ("~~~\nx = 1\n~~~", "x = 1"),
        ("  ```python\n  x = 1\n    y\n  ```", "x = 1\n  y"),
        ("```python\n<selection>x = 1</selection>\n```", "x = 1"),
        ("```python\r\nx = 1\r\n```\r\n", "x = 1"),
        ("def f():\n    return 1", "def f():\n    return 1"),
    ],
)
def test_extract_code(answer: str, code: str) -> None:
    assert extract_code(answer) == code


@pytest.mark.parametrize("answer", ["```python\nx = 1\ny = 2", "", "   \n", "```\n```"])
def test_answers_that_cannot_be_applied(answer: str) -> None:
    with pytest.raises(AnswerProblem):
        extract_code(answer)


def test_cut_off_answer_says_so() -> None:
    with pytest.raises(AnswerProblem, match="cut off"):
        extract_code("Here:\n```python\ndef f(x):\n    return")


def test_reindents_a_dedented_answer_to_the_selection() -> None:
    selection = "    def f(self):\n        return 1\n"
    answer = "def f(self) -> int:\n    return 1"
    assert fit_to_selection(answer, selection, "") == "    def f(self) -> int:\n        return 1\n"


def test_selection_that_starts_after_its_indentation() -> None:
    # The user selected from "if" on (the four spaces stay in front of the selection).
    selection = "if x:\n        y()"
    answer = "if x is not None:\n    y()"
    assert fit_to_selection(answer, selection, "    ") == "if x is not None:\n        y()"


def test_selection_in_the_middle_of_a_line() -> None:
    selection = "foo(a, b)"
    answer = "  foo(\n    a,\n    b,\n)"
    fitted = fit_to_selection(answer, selection, "    x = ")
    assert fitted == "foo(\n        a,\n        b,\n    )"


def test_tabs_and_crlf_are_kept() -> None:
    selection = "\tif x:\r\n\t\ty()\r\n"
    answer = "if x:\n    y()\n    z()"
    assert fit_to_selection(answer, selection, "") == "\tif x:\r\n\t\ty()\r\n\t\tz()\r\n"


def test_tabs_become_spaces_when_the_file_indents_with_spaces() -> None:
    selection = "  if x:\n    y()\n"
    answer = "if x:\n\ty()\n\t\tz()"
    assert fit_to_selection(answer, selection, "") == "  if x:\n    y()\n      z()\n"


def test_blank_lines_get_no_trailing_whitespace() -> None:
    assert fit_to_selection("a\n   \nb", "  a\n  b", "") == "  a\n\n  b"


def test_minimal_change_trims_the_common_start_and_end() -> None:
    old = "def f(x):\n    return x\n"
    new = "def f(x: int) -> int:\n    return x\n"
    change = minimal_change(old, new)
    assert change == Change(7, 8, ": int) -> int")
    assert change is not None
    assert old[: change.start] + change.replacement + old[change.end :] == new
    assert minimal_change(old, old) is None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a\r\nb", "a\r\nc\r\nb"),
        ("x\r\n", "y\r\n"),
        ("aaa", "aa"),
        ("aa", "aaa"),
        ("", "x"),
        ("ab\r\ncd", "ab\ncd"),
    ],
)
def test_minimal_change_round_trips_and_keeps_crlf_whole(old: str, new: str) -> None:
    change = minimal_change(old, new)
    assert change is not None
    assert old[: change.start] + change.replacement + old[change.end :] == new
    assert not (0 < change.start < len(old) and old[change.start - 1 : change.start + 1] == "\r\n")
    assert not (0 < change.end < len(old) and old[change.end - 1 : change.end + 1] == "\r\n")


def test_positions_in_each_encoding() -> None:
    text = "ab\n😀é = 1\n"
    offset = text.index("=")
    assert position_of(text, offset, "utf-16") == (1, 4)
    assert position_of(text, offset, "utf-8") == (1, 7)
    assert position_of(text, offset, "utf-32") == (1, 3)


def test_prompt_holds_instruction_selection_surroundings_and_snippets() -> None:
    snippet = Snippet("file:///p/models.py", 9, "class Item:\n    quantity: int", 1.0)
    context = EditContext(
        instruction="add type hints",
        language_id="python",
        path="/p/inventory.py",
        before="import x\n",
        selection="def f(a):\n    return a\n",
        after="\nprint(f(1))\n",
        snippets=(snippet,),
    )
    system, user = render_edit_messages(context)
    assert system["role"] == "system" and user["role"] == "user"
    text = user["content"]
    assert "Instruction: add type hints" in text
    assert "import x\n<selection>def f(a):\n    return a\n</selection>\nprint(f(1))" in text
    assert "/p/models.py, line 10:\n```python\nclass Item:" in text
    assert "The selection:\n```python\ndef f(a):\n    return a\n```" in text


def test_fence_is_longer_than_any_backticks_inside() -> None:
    assert fence_for("no ticks") == "```"
    assert fence_for("a ```` b") == "`````"


def test_surroundings_take_whole_lines_around_the_selection() -> None:
    text = "a\nb\nc = 1\nd\ne\n"
    start, end = text.index("1"), text.index("1") + 1
    assert surroundings(text, start, end, 1) == ("b\nc = ", "\nd\n")
    assert surroundings(text, start, end, 0) == ("c = ", "\n")
    assert surroundings(text, start, end, 99) == ("a\nb\nc = ", "\nd\ne\n")


def test_redaction_hides_the_selection_too() -> None:
    key = "sk-" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4"
    before, selection = f"KEY = '{key}'\n", f"k = '{key}'"
    context = EditContext("x", "python", "/p.py", before, selection, "", ())
    hidden = redacted(context, before + selection, len(before), {})
    assert key not in hidden.before and key not in hidden.selection
    assert hidden.selection == "k = '<redacted-1>'"
