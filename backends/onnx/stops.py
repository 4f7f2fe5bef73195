"""When to stop generating: rules checked on the text as tokens arrive.

They end generation at the point where postprocess/filters.py's ``cut_to_scope`` would cut anyway
(one line, or a block that ends where the indentation drops below the cursor's line), at a
stop string, or at ``max_chars``; every token not generated is time saved on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from ghostcomplete.context.syntax import Scope


@dataclass(frozen=True)
class StopRule:
    scope: Scope
    line_prefix: str
    max_lines: int
    max_chars: int
    stop: tuple[str, ...] = ()

    def cut(self, text: str) -> int | None:
        """Where ``text`` must end, or None to keep generating."""
        ends = [at for at in (text.find(s) for s in self.stop if s) if at >= 0]
        if len(text) >= self.max_chars:
            ends.append(self.max_chars)
        scope_end = self._scope_end(text)
        if scope_end is not None:
            ends.append(scope_end)
        return min(ends) if ends else None

    def settled(self, text: str) -> int:
        """How much of ``text`` (a generation that ``cut`` let go on) no later token can cut
        away: a stop string may still complete in the last few characters, and in a block
        the line after the last line break may yet turn out to be dedented."""
        hold = max((len(s) - 1 for s in self.stop if s), default=0)
        end = max(0, len(text) - hold)
        if self.scope is Scope.BLOCK:
            last_break = text.rfind("\n")
            if last_break >= 0:
                end = min(end, last_break)
        return end

    def _scope_end(self, text: str) -> int | None:
        if self.scope is Scope.LINE:
            start = 1 if text.startswith("\n") and self.line_prefix.strip() else 0
            end = text.find("\n", start)
            return None if end < 0 else end
        # A block: stop before a line indented less than the cursor's line (known as soon as
        # its first non-blank character arrives), or before line max_lines + 1.
        indent = len(self.line_prefix) - len(self.line_prefix.lstrip())
        count = 0 if text.startswith("\n") else 1
        position = text.find("\n", 1 - count)
        while position >= 0:
            if count >= self.max_lines:
                return position
            following = text.find("\n", position + 1)
            line = text[position + 1 : following if following >= 0 else len(text)]
            stripped = line.lstrip()
            if stripped and len(line) - len(stripped) < indent:
                return position
            count += 1
            position = following
        return None
