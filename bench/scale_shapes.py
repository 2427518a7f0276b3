"""The shapes of a year of the suite's data: who orders, how much, when, and what it became.

Used by bench/scale_seed.py (which writes the rows) and its tests. For N orders: N / 10 users
(at least 50); `HEAVY_USERS` heavy users with 2% of the orders each (at least
`HEAVY_MIN_ORDERS`, at most half of all between them, so that a 50th page of 20 exists at
every size), the rest spread by a per-user Pareto(1.2) activity; orders over the past year
with 1-3 catalogue items, the transitions their age implies, and the service's own templates
for what their events render to.
"""

from __future__ import annotations

import functools
import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

SEED_PASSWORD = "scale-Seed-password-7f3a"  # noqa: S105 - a benchmark's synthetic users
HEAVY_USERS = 3
HEAVY_SHARE = 0.02
HEAVY_MIN_ORDERS = 1_200
YEAR = timedelta(days=365)
DAY = timedelta(days=1)
# The retentions of the purge jobs (their defaults in the services' config).
OUTBOX_RETENTION = timedelta(days=7)
INBOX_RETENTION = timedelta(days=30)
IDEMPOTENCY_TTL = timedelta(days=1)
DELIVERY_RETENTION = timedelta(days=30)
NOTIFICATION_RETENTION = timedelta(days=365)
# One id namespace for the seeded users: the same index gives the same id in every run.
USER_NAMESPACE = uuid.UUID("6f1c0b4e-8a7d-4c55-9d0e-5b2f3c1a9e77")
CHUNK = 50_000


_VERSION_4 = (0xF << 76) | (0x3 << 62), (0x4 << 76) | (0x2 << 62)


def new_id(rng: random.Random) -> str:
    """A random (version 4) UUID as text, from `rng`.

    Hand-written rather than uuid.uuid4(): building a UUID object from os.urandom for each
    of the ~10 million rows of a 10^6 seed was a third of its time.
    """
    mask, bits = _VERSION_4
    h = f"{(rng.getrandbits(128) & ~mask) | bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@functools.cache
def user_id(index: int) -> str:
    """The id of seeded user number `index` (0, 1, ...; the heavy users come first).

    Cached: every row of a user's orders, notifications and deliveries names it.
    """
    return str(uuid.uuid5(USER_NAMESPACE, str(index)))


def user_email(index: int) -> str:
    """The seeded user's address; user 0..HEAVY_USERS-1 are the heavy ones."""
    return f"scale-user-{index}@scale.example.com"


def users_for(orders: int) -> int:
    """How many users `orders` orders belong to: one in ten, at least 50."""
    return max(50, orders // 10)


# -- who orders what, when -----------------------------------------------------------------


def heavy_orders(total: int) -> int:
    """Orders each heavy user has among the first `total` (at most half of all go to them)."""
    if total == 0:
        return 0
    return min(max(round(HEAVY_SHARE * total), HEAVY_MIN_ORDERS), total // (2 * HEAVY_USERS))


def activity(index: int) -> float:
    """How much the (non-heavy) user orders, relative to others: Pareto(1.2), capped.

    Most users order once or twice a year, a few hundred times; fixed per user, so the
    data grown in steps keeps each user's habits.
    """
    return min(2_000.0, random.Random(index).paretovariate(1.2))


def owners(start: int, end: int, rng: random.Random) -> list[int]:
    """The user index of each of orders start..end-1, shuffled."""
    result: list[int] = []
    for heavy in range(HEAVY_USERS):
        result += [heavy] * (heavy_orders(end) - heavy_orders(start))
    population = range(HEAVY_USERS, users_for(end))
    weights = [activity(i) for i in population]
    result += rng.choices(population, weights=weights, k=end - start - len(result))
    rng.shuffle(result)
    return result


@dataclass
class OrderPlan:
    """One generated order and the events its life produced."""

    id: str
    user: int
    created_at: datetime
    currency: str
    items: list[tuple[str, int, int]]  # sku, quantity, unit price
    statuses: list[tuple[str, datetime]] = field(default_factory=list)  # transitions

    @property
    def status(self) -> str:
        return self.statuses[-1][0] if self.statuses else "pending"

    @property
    def total(self) -> int:
        return sum(q * p for _, q, p in self.items)


def life(age: timedelta, rng: random.Random) -> list[str]:
    """The statuses an order of this age went through after pending (every state occurs)."""
    roll = rng.random()
    if age > timedelta(days=14):
        if roll < 0.8:
            return ["confirmed", "shipped", "delivered"]
        return ["cancelled"] if roll < 0.9 else ["confirmed", "cancelled"]
    if age > timedelta(days=3):
        if roll < 0.5:
            return ["confirmed", "shipped", "delivered"]
        if roll < 0.8:
            return ["confirmed", "shipped"]
        return ["cancelled"]
    if roll < 0.4:
        return []
    if roll < 0.7:
        return ["confirmed"]
    return ["confirmed", "shipped"] if roll < 0.9 else ["cancelled"]


def plan_order(
    user: int, now: datetime, catalogue: Mapping[str, Sequence[tuple[str, int]]], rng: random.Random
) -> OrderPlan:
    """One order of `user`, placed in the past year, with the transitions its age implies."""
    created = now - timedelta(seconds=rng.random() * YEAR.total_seconds())
    currency = "EUR" if rng.random() < 0.95 or "USD" not in catalogue else "USD"
    products = catalogue[currency]
    chosen = rng.sample(products, k=min(len(products), rng.choice((1, 1, 2, 2, 3))))
    items = [(sku, rng.choice((1, 1, 1, 2, 3)), price) for sku, price in chosen]
    order = OrderPlan(new_id(rng), user, created, currency, items)
    at = created
    for status in life(now - created, rng):
        at = min(now, at + timedelta(hours=rng.uniform(2, 48)))
        order.statuses.append((status, at))
    return order


# -- rows ----------------------------------------------------------------------------------


class Renderer:
    """The service's own templates, rendered once per shape and reused with the order's ref."""

    PLACEHOLDER = "00000000-0000-4000-8000-000000000000"

    def __init__(self) -> None:
        from services.notifications.rendering import render

        self._render = render
        self._cache: dict[Any, tuple[str, str, str]] = {}

    def order(self, event_type: str, data: dict[str, Any], key: Any) -> tuple[str, str, str]:
        """(title, body, payload JSON) of an order event; the order's ref substituted."""
        ref = str(data["order_id"])[:8]
        if key not in self._cache:
            self._cache[key] = self._rows(event_type, {**data, "order_id": self.PLACEHOLDER})
        title, body, payload = self._cache[key]
        mark = self.PLACEHOLDER[:8]
        return title.replace(mark, ref), body.replace(mark, ref), payload.replace(mark, ref)

    def welcome(self) -> tuple[str, str, str]:
        """(title, body, payload JSON) of the welcome notification."""
        if "welcome" not in self._cache:
            data = {"user_id": "x", "email": "x@scale.example.com", "name": "x", "version": 1}
            self._cache["welcome"] = self._rows("user.registered", data)
        return self._cache["welcome"]

    def _rows(self, event_type: str, data: dict[str, Any]) -> tuple[str, str, str]:
        rendered = self._render(event_type, data, name="Scale User")
        email = {
            "subject": rendered.title,
            "text": rendered.email_text,
            "html": rendered.email_html,
        }
        return rendered.title, rendered.body, json.dumps(email)


def cloudevent(
    source: str, event_type: str, event_id: str, at: datetime, subject: str, data: dict[str, Any]
) -> str:
    """A CloudEvent in the suite's structured JSON form, as an outbox row holds it."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": event_type,
            "time": at.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": data,
            "dataschema": f"urn:flask-microservices-suite:events:{event_type}:1",
            "subject": subject,
        }
    )
