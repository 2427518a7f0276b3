"""Capped exponential backoff, the one formula every retry loop in the suite uses.

A wait after the n-th failure in a row grows as base * 2^(n-1) up to a cap. Loops that
many processes run at once (reconnects after a broker or database outage, retried
deliveries) take `jittered_delay`: "equal jitter", half of the wait fixed and half random,
so those processes do not come back in step, while the fixed half keeps a floor under
the whole retry window.

Hand-written rather than tenacity or backoff: both tie the wait to their own retry
decorators, and these loops must stay interruptible (a stop event, a drain deadline,
heartbeats) between attempts, which only the caller can do.
"""

from __future__ import annotations

import random

# 2^64 times any sane base is already past every cap; bounding the exponent keeps a long
# outage's failure count from overflowing a float.
_MAX_EXPONENT = 64


def backoff_ceiling(attempt: int, *, base: float, cap: float) -> float:
    """The wait after failure number `attempt` (1-based, in a row): base * 2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must not be negative")
    return min(cap, base * 2.0 ** min(attempt - 1, _MAX_EXPONENT))


def jittered_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """A wait in [ceiling / 2, ceiling] for failure number `attempt` (equal jitter)."""
    ceiling = backoff_ceiling(attempt, base=base, cap=cap)
    uniform = rng.uniform if rng is not None else random.uniform
    return ceiling / 2 + uniform(0, ceiling / 2)
