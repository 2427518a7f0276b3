"""Per-second views of an open-loop run: what was sent, what was notified, and the p99."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench.events import Sample, percentile


def per_second(
    samples: Sequence[Sample], notified: Mapping[str, float], *, start: float
) -> list[dict[str, Any]]:
    """One bucket per second from `start` (epoch) until the last send or notification.

    `sent` counts the POSTs that left in that second, `notified` the notification rows
    created in it (its throughput), and the latencies (POST sent -> notification row) are
    those of the orders sent in it: a second's p99 says how the orders placed then fared.
    """
    ends = [s.sent for s in samples] + list(notified.values())
    if not ends:
        return []
    count = max(1, math.floor(max(ends) - start) + 1)
    sent = [0] * count
    done = [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]

    def bucket(at: float) -> int:
        return min(count - 1, max(0, math.floor(at - start)))

    for sample in samples:
        k = bucket(sample.sent)
        sent[k] += 1
        created = notified.get(sample.order_id or "")
        if created is not None:
            latencies[k].append((created - sample.sent) * 1000)
    for created in notified.values():
        done[bucket(created)] += 1
    return [
        {
            "second": k,
            "sent": sent[k],
            "notified": done[k],
            "p50_ms": percentile(latencies[k], 50),
            "p99_ms": percentile(latencies[k], 99),
        }
        for k in range(count)
    ]


def steady_rate(buckets: Sequence[Mapping[str, Any]], seconds: float) -> float:
    """Notifications per second, averaged over the schedule's seconds without the first and
    last (the pipeline filling and draining); NaN without buckets.

    A mean, not a median: a pipeline that keeps up notifies exactly the scheduled rate on
    average, while single seconds scatter around it with the latency's jitter.
    """
    window = list(buckets[: max(1, math.floor(seconds))])
    if len(window) >= 3:
        window = window[1:-1]
    if not window:
        return float("nan")
    return sum(int(b["notified"]) for b in window) / len(window)
