"""Records of the sample inventory project (used by `make try` and the end-to-end tests)."""

from dataclasses import dataclass


@dataclass
class Product:
    sku: str
    name: str
    price_cents: int
    quantity: int

    def total_value_cents(self) -> int:
        return self.price_cents * self.quantity

    def is_in_stock(self) -> bool:
        return self.quantity > 0


@dataclass
class Supplier:
    name: str
    email: str
    lead_time_days: int
