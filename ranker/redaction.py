"""Redaction of obvious secrets from text that leaves the machine (remote backends only)."""

from __future__ import annotations

import re

REDACTED = "<redacted>"

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private key",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
    ),
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})")),
    ("OpenAI-style key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    ("Stripe key", re.compile(r"\b(?:sk|rk)_live_[0-9a-zA-Z]{20,}")),
    ("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")),
)

# name = "value" where the name says secret: keep the name, redact the value.
_ASSIGNED_SECRET = re.compile(
    r"""(?ix)
    (\b[\w.-]*(?:api[_-]?key|secret|token|passw(?:or)?d|credential)[\w.-]*\b
     ["']?\s*[:=]\s*)
    (["'])([^"'\n]{8,})\2
    """
)


def redact(text: str) -> tuple[str, int]:
    """``text`` with secrets replaced by <redacted>, and how many were replaced."""
    count = 0
    for _, pattern in _PATTERNS:
        text, replaced = pattern.subn(REDACTED, text)
        count += replaced

    assigned = 0

    def keep_name(match: re.Match[str]) -> str:
        nonlocal assigned
        if match.group(3) == REDACTED:
            return match.group(0)
        assigned += 1
        return f"{match.group(1)}{match.group(2)}{REDACTED}{match.group(2)}"

    text = _ASSIGNED_SECRET.sub(keep_name, text)
    return text, count + assigned
