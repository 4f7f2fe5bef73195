"""The offer ledger: each suggestion the client was given, by item id, and where it went.

One ledger serves every reader: the session prefetches after a shown or accepted item, and
telemetry finds an accepted item in the document to watch whether it stays. Item ids are made
by one rule, ``item_id``, so that the ids the client sends back always match.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# Items older than this many offers are forgotten: the client no longer shows them.
MAX_REMEMBERED_OFFERS = 2000


def item_id(completion_id: str, index: int) -> str:
    """The id of the ``index``-th item of a completion (its command argument)."""
    return f"{completion_id}-{index}"


@dataclass(frozen=True)
class Offer:
    """A suggestion as given: its text and the position it was offered at."""

    uri: str
    line: int
    character: int
    text: str
    # The unit of ``character``: the position encoding negotiated with the client.
    encoding: str = "utf-16"


class OfferLedger:
    """The latest offers, oldest forgotten first."""

    def __init__(self, capacity: int = MAX_REMEMBERED_OFFERS) -> None:
        self.capacity = capacity
        self._offers: OrderedDict[str, Offer] = OrderedDict()

    def record(self, item: str, offer: Offer) -> None:
        self._offers[item] = offer
        while len(self._offers) > self.capacity:
            self._offers.popitem(last=False)

    def get(self, item: str) -> Offer | None:
        return self._offers.get(item)
