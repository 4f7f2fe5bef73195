"""An edit request without the editor: which backends can edit, the selection, what the model is
shown, and the change its answer asks for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from ghostcomplete.context.display_paths import display_path
from ghostcomplete.context.documents import DocumentSnapshot
from ghostcomplete.edit.answer import (
    AnswerProblem,
    Change,
    extract_code,
    fit_to_selection,
    minimal_change,
)
from ghostcomplete.edit.prompt import EditContext, redacted, restore_secrets, surroundings
from ghostcomplete.ranker.snippets import Snippet

_CANNOT_FOLLOW = {
    "lookup": "the lookup backend copies text from open files and has no model",
    "auto": (
        "the backend auto chose (the lookup, or the lookup with an installed completion model) "
        "has no instruct model"
    ),
    "hybrid": "the hybrid backend's model cannot follow instructions (or did not load)",
    "onnx": (
        "the onnx backend's model is a code-completion (fill-in-the-middle) model with no chat "
        "template (backend.onnx.path may name an instruct model exported by optimum instead)"
    ),
}


class InstructBackend(Protocol):
    async def chat(
        self, messages: list[dict[str, str]], deadline: float | None = None, max_tokens: int = 1024
    ) -> str: ...


def instruct_backend(backend: object, kind: str) -> InstructBackend | str:
    """The backend when it can follow instructions; otherwise what the user must configure."""
    if callable(getattr(backend, "chat", None)) and getattr(backend, "follows_instructions", True):
        return cast(InstructBackend, backend)
    why = _CANNOT_FOLLOW.get(kind, f"the {kind} backend cannot follow instructions")
    return (
        f"edit requests need a model that follows instructions, and {why}. Set "
        'backend.kind = "http" and backend.http.url to an OpenAI-compatible server with a '
        "chat model (one that answers /v1/chat/completions: llama.cpp, Ollama, vLLM, a hosted "
        "API); see the README, Edit requests"
    )


@dataclass(frozen=True)
class Outcome:
    applied: bool
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "message": self.message}


@dataclass(frozen=True)
class Selection:
    document: DocumentSnapshot
    instruction: str
    start: int  # string offsets into document.text
    end: int

    @property
    def text(self) -> str:
        return self.document.text[self.start : self.end]

    @property
    def line_head(self) -> str:
        """The selection's first line up to the selection."""
        text = self.document.text
        return text[text.rfind("\n", 0, self.start) + 1 : self.start]


@dataclass(frozen=True)
class Planned:
    """An edit ready to send: ``change`` is relative to the selection's start."""

    selection: Selection
    change: Change


def edit_context(
    selection: Selection,
    snippets: Sequence[Snippet],
    context_lines: int,
    remote: bool,
    roots: Sequence[Path] = (),
    sources: Mapping[str, str] | None = None,
) -> EditContext:
    """What the model is shown; with its secrets hidden when the text leaves the machine
    (``sources``: the texts of the snippets' files by URI, so that each is redacted whole).
    Files are named relative to the workspace folder that holds them."""
    document = selection.document
    before, after = surroundings(document.text, selection.start, selection.end, context_lines)
    path = display_path(document.uri, roots)
    paths = {snippet.uri: display_path(snippet.uri, roots) for snippet in snippets}
    context = EditContext(
        selection.instruction,
        document.language_id,
        path,
        before,
        selection.text,
        after,
        snippets,
        paths,
    )
    if not remote:
        return context
    known = {**(sources or {}), document.uri: document.text}
    return redacted(context, document.text, selection.start, known)


def plan(
    answer: str, selection: Selection, context: EditContext | None = None
) -> Planned | Outcome:
    """The edit the answer asks for, or why there is none to apply. ``context`` is what the
    model was shown: when it hid secrets, the answer is fitted to the selection the model saw
    and the secrets are put back where it kept their placeholders."""
    try:
        code = extract_code(answer)
    except AnswerProblem as problem:
        return Outcome(False, str(problem))
    if context is not None and context.secrets:
        # ``before`` starts at a line start, so its last line leads up to the selection.
        head = context.before[context.before.rfind("\n") + 1 :]
        fitted = restore_secrets(fit_to_selection(code, context.selection, head), context)
    else:
        fitted = fit_to_selection(code, selection.text, selection.line_head)
    change = minimal_change(selection.text, fitted)
    if change is None:
        return Outcome(False, "the model left the selection as it was; nothing to change")
    return Planned(selection, change)
