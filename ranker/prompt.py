"""Fill-in-the-middle prompts in the formats of the model families we talk to."""

from __future__ import annotations

from dataclasses import dataclass

from ghostcomplete.ranker.budget import PackedContext
from ghostcomplete.ranker.snippets import Snippet
from ghostcomplete.ranker.tokens import TokenCounter


@dataclass(frozen=True)
class FimTemplate:
    """How one model family marks prefix, suffix and the hole, and other files."""

    prefix: str
    suffix: str
    middle: str
    stop: tuple[str, ...]
    suffix_first: bool = False
    # The family's multi-file format: each snippet as "<file_sep>path\ncontent\n", then the
    # current file's path, optionally after "<repo_name>name\n". None: path-headed comments.
    file_sep: str | None = None
    repo_name: str | None = None
    # False for plain left-to-right models: the prompt is the prefix alone.
    uses_suffix: bool = True


TEMPLATES: dict[str, FimTemplate] = {
    # StarCoder (1): FIM tokens; other files as comments.
    "starcoder": FimTemplate(
        "<fim_prefix>", "<fim_suffix>", "<fim_middle>", ("<|endoftext|>", "<file_sep>")
    ),
    # StarCoder2: the same FIM tokens, other files in its <repo_name>/<file_sep> format.
    "starcoder2": FimTemplate(
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
        ("<|endoftext|>", "<file_sep>"),
        file_sep="<file_sep>",
        repo_name="<repo_name>",
    ),
    "codellama": FimTemplate("<PRE> ", " <SUF>", " <MID>", ("<EOT>",)),
    "deepseek": FimTemplate(
        "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", ("<｜end▁of▁sentence｜>",)
    ),
    # Qwen2.5-Coder, with its repository format (<|repo_name|>, <|file_sep|>).
    "qwen": FimTemplate(
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
        ("<|endoftext|>", "<|file_sep|>", "<|fim_pad|>"),
        file_sep="<|file_sep|>",
        repo_name="<|repo_name|>",
    ),
    "codegemma": FimTemplate(
        "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", ("<|file_separator|>",)
    ),
    # Codestral: suffix first, then the prefix; the model writes the middle.
    "codestral": FimTemplate("[PREFIX]", "[SUFFIX]", "", ("</s>",), suffix_first=True),
    # A plain left-to-right model: no FIM tokens, no suffix.
    "plain": FimTemplate("", "", "", (), uses_suffix=False),
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


def render_snippet_file(snippet: Snippet, template: FimTemplate, path: str) -> str:
    """One snippet in a family's multi-file format."""
    return f"{template.file_sep}{path}\n{snippet.text}\n"


def snippet_tokens(
    snippet: Snippet,
    language_id: str,
    path: str,
    counter: TokenCounter,
    family: str | None = None,
) -> int:
    """Tokens of the snippet as ``family`` renders it, counted line by line (each with its
    line break) so that the memoized line counts serve; the packing test checks the sum keeps
    the rendered prompt within the budget."""
    template = TEMPLATES.get(family or "")
    if template is not None and template.file_sep:
        rendered = render_snippet_file(snippet, template, path)
    else:
        rendered = render_snippet(snippet, language_id, path)
    return sum(counter.count_lines([line + "\n" for line in rendered.split("\n")]))


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
    repo: str = "",
) -> str:
    """The prompt string for ``family``'s fill-in-the-middle format; ``repo`` names the
    workspace for families with a repository header."""
    template = TEMPLATES[family]
    paths = paths or {}
    if template.file_sep:
        files = "".join(
            render_snippet_file(s, template, paths.get(s.uri, s.uri)) for s in context.snippets
        )
        head = f"{template.repo_name}{repo}\n" if template.repo_name and repo else ""
        head += f"{files}{template.file_sep}{path}\n"
        if template.suffix_first:
            return f"{head}{template.suffix}{context.suffix}{template.prefix}{context.prefix}"
        return (
            f"{head}{template.prefix}{context.prefix}{template.suffix}{context.suffix}"
            f"{template.middle}"
        )
    mark = comment_prefix(language_id)
    prefix = (
        f"{mark} Path: {path}\n" + render_snippets(context, language_id, paths) + context.prefix
    )
    if not template.uses_suffix:
        return prefix
    if template.suffix_first:
        return f"{template.suffix}{context.suffix}{template.prefix}{prefix}{template.middle}"
    return f"{template.prefix}{prefix}{template.suffix}{context.suffix}{template.middle}"
