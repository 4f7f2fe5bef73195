"""The record of offered completions and what became of them (in memory, bounded)."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

_MAX_REMEMBERED = 2000


@dataclass
class Offer:
    """One suggestion given to the editor."""

    completion_id: str
    uri: str
    language_id: str
    text: str
    offered_at: float = field(default_factory=time.time)
    shown: bool = False
    accepted_chars: int = 0  # UTF-16 units accepted; == len(text) for a full accept
    accepted: bool = False


class CompletionLog:
    """Offers by id, bounded; counters survive eviction."""

    def __init__(self) -> None:
        self._offers: OrderedDict[str, Offer] = OrderedDict()
        self.counts: Counter[str] = Counter()

    def offered(self, offer: Offer) -> None:
        self._offers[offer.completion_id] = offer
        self.counts["offered"] += 1
        while len(self._offers) > _MAX_REMEMBERED:
            self._offers.popitem(last=False)

    def get(self, completion_id: str) -> Offer | None:
        return self._offers.get(completion_id)

    def shown(self, completion_id: str) -> bool:
        offer = self._offers.get(completion_id)
        if offer is None or offer.shown:
            return False
        offer.shown = True
        self.counts["shown"] += 1
        return True

    def accepted(self, completion_id: str) -> bool:
        offer = self._offers.get(completion_id)
        if offer is None or offer.accepted:
            return False
        offer.accepted = True
        offer.shown = True
        self.counts["accepted"] += 1
        return True

    def partially_accepted(self, completion_id: str, accepted_chars: int) -> bool:
        offer = self._offers.get(completion_id)
        if offer is None or accepted_chars <= offer.accepted_chars:
            return False
        offer.accepted_chars = accepted_chars
        offer.shown = True
        self.counts["partially_accepted"] += 1
        return True

    def stats(self) -> dict[str, float]:
        offered = self.counts["offered"]
        accepted = self.counts["accepted"]
        return {
            "offered": offered,
            "shown": self.counts["shown"],
            "accepted": accepted,
            "partiallyAccepted": self.counts["partially_accepted"],
            "acceptanceRate": round(accepted / offered, 4) if offered else 0.0,
        }
