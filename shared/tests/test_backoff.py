"""The one backoff formula: doubling from the base, never past the cap, jitter in the upper half."""

import random

import pytest

from shared.backoff import backoff_ceiling, jittered_delay


def test_the_wait_doubles_from_the_base_and_stops_at_the_cap() -> None:
    waits = [backoff_ceiling(n, base=0.5, cap=5.0) for n in range(1, 8)]

    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_a_very_long_outage_stays_at_the_cap_instead_of_overflowing() -> None:
    assert backoff_ceiling(10_000, base=0.25, cap=300.0) == 300.0
    assert jittered_delay(10_000, base=0.25, cap=300.0) <= 300.0


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_ceiling(attempt, base=1.0, cap=10.0)


def test_a_negative_base_or_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        jittered_delay(1, base=-1.0, cap=10.0)
    with pytest.raises(ValueError, match="negative"):
        jittered_delay(1, base=1.0, cap=-10.0)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)])
def test_jittered_waits_spread_over_the_upper_half_of_the_ceiling(
    attempt: int, ceiling: float
) -> None:
    rng = random.Random(11)

    delays = [jittered_delay(attempt, base=1.0, cap=8.0, rng=rng) for _ in range(500)]

    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    # Spread over the whole half, so processes that failed together do not retry in step.
    assert min(delays) < ceiling * 0.55
    assert max(delays) > ceiling * 0.95


def test_without_an_rng_the_module_random_is_used_within_the_same_bounds() -> None:
    delays = {jittered_delay(3, base=1.0, cap=60.0) for _ in range(50)}

    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(delays) > 1
