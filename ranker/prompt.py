"""Fill-in-the-middle prompts in the formats of the model families we talk to."""

from __future__ import annotations

from dataclasses import dataclass

from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.snippets import Snippet
from ghostcomplete.ranker.tokens import TokenCounter


@dataclass(frozen=True)
class FimTemplate:
    """How one model family marks prefix, suffix and the hole."""

    prefix: str
    suffix: str
    middle: str
    stop: tuple[str, ...]
    suffix_first: bool = False


TEMPLATES: dict[str, FimTemplate] = {
    "starcoder": FimTemplate(
        "<fim_prefix>", "<fim_suffix>", "<fim_middle>", ("<|endoftext|>", "<file_sep>")
    ),
    "codellama": FimTemplate("<PRE> ", " <SUF>", " <MID>", ("<EOT>",)),
    "deepseek": FimTemplate(
        "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", ("<｜end▁of▁sentence｜>",)
    ),
    "qwen": FimTemplate(
        "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", ("<|endoftext|>", "<|file_sep|>")
    ),
    "codegemma": FimTemplate(
        "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", ("<|file_separator|>",)
    ),
}

_LINE_COMMENTS: dict[str, str] = {
    "python": "#",
    "ruby": "#",
    "shellscript": "#",
    "lua": "--",
}


def comment_prefix(language_id: str) -> str:
    return _LINE_COMMENTS.get(language_id, "//")


def render_snippet(snippet: Snippet, language_id: str, path: str) -> str:
    """One snippet as a path-headed comment, the way Copilot shows them to a model."""
    mark = comment_prefix(language_id)
    body = "\n".join(f"{mark} {line}" if line else mark for line in snippet.text.split("\n"))
    return f"{mark} Compare this snippet from {path}:\n{body}\n"


def snippet_tokens(snippet: Snippet, language_id: str, path: str, counter: TokenCounter) -> int:
    """Tokens of the rendered snippet, counted line by line (each with its line break) so
    that the memoized line counts serve; the packing test checks the sum keeps the rendered
    prompt within the budget."""
    lines = render_snippet(snippet, language_id, path).split("\n")
    return sum(counter.count_lines([line + "\n" for line in lines]))


def render_snippets(context: PackedContext, language_id: str, paths: dict[str, str]) -> str:
    """Snippets as comments at the top of the prefix."""
    return "".join(
        render_snippet(snippet, language_id, paths.get(snippet.uri, snippet.uri))
        for snippet in context.snippets
    )


def render_fim(
    context: PackedContext,
    family: str,
    language_id: str,
    path: str,
    paths: dict[str, str] | None = None,
) -> str:
    """The prompt string for ``family``'s fill-in-the-middle format."""
    template = TEMPLATES[family]
    mark = comment_prefix(language_id)
    head = f"{mark} Path: {path}\n" + render_snippets(context, language_id, paths or {})
    prefix = head + context.prefix
    if template.suffix_first:
        return f"{template.suffix}{context.suffix}{template.prefix}{prefix}{template.middle}"
    return f"{template.prefix}{prefix}{template.suffix}{context.suffix}{template.middle}"
