"""The soak's verdict: does anything keep growing once the suite is warm?

Pure functions over what `chaos.soak` sampled (no I/O), tested on their own:

* a process's resident memory and open files must grow less than `limit` (10 %) from the
  start of the measured span (after the warm-up) to its end. Each end is the median of a
  window of samples, so one garbage-collection spike or one socket opened for a moment
  does not decide it; a process that is not there at both ends was restarted, which hides
  any growth, and fails;
* a table that is not the suite's data (orders, notifications, deliveries grow with every
  order, by design) must stay bounded: its largest size in the second half of the measured
  span at most `limit` above its largest in the first half. An inbox or an outbox purged
  after a retention saw-tooths between two levels and passes; one that is never purged
  keeps climbing and fails.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

GROWTH_LIMIT = 0.10
# At least this many samples at each end of the measured span.
MIN_WINDOW = 3


@dataclass(frozen=True)
class Growth:
    """One series (a process's RSS or open files) from the start to the end of the span."""

    series: str
    start: float
    end: float
    limit: float = GROWTH_LIMIT
    missing: bool = False  # not sampled at both ends: restarted or dead

    @property
    def ratio(self) -> float:
        """(end - start) / start; 0 for a series that started at 0 and stayed there."""
        if self.start <= 0:
            return 0.0 if self.end <= 0 else float("inf")
        return (self.end - self.start) / self.start

    @property
    def ok(self) -> bool:
        return not self.missing and self.ratio < self.limit


def measured(samples: Iterable[tuple[float, float]], warmup: float) -> list[tuple[float, float]]:
    """The (time, value) samples taken after the warm-up, in time order."""
    return sorted((at, value) for at, value in samples if at >= warmup)


def window(count: int, fraction: float = 1 / 6) -> int:
    """How many samples each end's median takes: `fraction` of them, at least MIN_WINDOW."""
    return max(MIN_WINDOW, round(count * fraction))


def growth(
    series: str,
    samples: Iterable[tuple[float, float]],
    *,
    warmup: float,
    end: float,
    limit: float = GROWTH_LIMIT,
    edge: float = 30.0,
) -> Growth:
    """Median of the first window after `warmup` against the median of the last one.

    A series whose samples stop more than `edge` seconds before `end` (the process went
    away) or that has fewer than two windows of samples is `missing`.
    """
    points = measured(samples, warmup)
    size = window(len(points))
    if len(points) < 2 * MIN_WINDOW or points[-1][0] < end - edge or points[0][0] > warmup + edge:
        first = points[0][1] if points else 0.0
        last = points[-1][1] if points else 0.0
        return Growth(series, first, last, limit, missing=True)
    first = statistics.median(value for _, value in points[:size])
    last = statistics.median(value for _, value in points[-size:])
    return Growth(series, first, last, limit)


@dataclass(frozen=True)
class Bound:
    """One table: its largest size in each half of the measured span."""

    table: str
    first_half: int
    second_half: int
    limit: float = GROWTH_LIMIT
    slack: int = 0

    @property
    def ok(self) -> bool:
        return self.second_half <= self.first_half * (1 + self.limit) + self.slack


def bounded(
    table: str,
    samples: Iterable[tuple[float, int]],
    *,
    warmup: float,
    limit: float = GROWTH_LIMIT,
    slack: int = 0,
) -> Bound:
    """The table's peak in the second half of the measured span against its first half's.

    `slack` absorbs what the load itself keeps in flight (a few seconds of orders), so that
    a table that is nearly empty does not fail on a handful of rows.
    """
    points = measured(((at, float(rows)) for at, rows in samples), warmup)
    if not points:
        return Bound(table, 0, 0, limit, slack)
    middle = points[0][0] + (points[-1][0] - points[0][0]) / 2
    first = [rows for at, rows in points if at <= middle]
    second = [rows for at, rows in points if at > middle] or first
    return Bound(table, int(max(first)), int(max(second)), limit, slack)


def resident(
    samples: Mapping[str, Sequence[tuple[float, float]]],
    *,
    warmup: float,
    end: float,
    limit: float = GROWTH_LIMIT,
) -> list[Growth]:
    """growth() of every series, by name."""
    return [
        growth(name, points, warmup=warmup, end=end, limit=limit)
        for name, points in sorted(samples.items())
    ]


def tables_bounded(
    samples: Mapping[str, Sequence[tuple[float, int]]],
    *,
    warmup: float,
    data_tables: Iterable[str],
    limit: float = GROWTH_LIMIT,
    slack: int = 0,
) -> list[Bound]:
    """bounded() of every table except the suite's data (`service.table` names)."""
    data = set(data_tables)
    return [
        bounded(name, points, warmup=warmup, limit=limit, slack=slack)
        for name, points in sorted(samples.items())
        if name not in data
    ]
