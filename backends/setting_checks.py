"""The validation a settings field carries: ``field(metadata=between(0, 20))``.

completion/settings.py checks every value it parses against its field's ``check``: a predicate and
the words that complete "… must be …" in the message a user sees when it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def check(predicate: Callable[[Any], bool], description: str) -> dict[str, Any]:
    return {"check": (predicate, description)}


def between(low: float, high: float) -> dict[str, Any]:
    return check(lambda value: low <= value <= high, f"between {low} and {high}")


def one_of(*choices: str) -> dict[str, Any]:
    return check(lambda value: value in choices, "one of " + ", ".join(choices))
