"""The open-loop driver keeps its schedule, however slow the answers are."""

from __future__ import annotations

import time

from bench.events import Sample, open_loop, percentile


def test_requests_leave_on_schedule_even_when_answers_are_slow():
    def slow(due: float) -> Sample:
        sent = time.time()
        time.sleep(0.2)  # far longer than the 10 ms between two sends
        return Sample(due, sent, time.time(), 201, "o")

    samples = open_loop(slow, rate=100, seconds=0.2)

    assert len(samples) == 20
    assert max(s.sent - s.due for s in samples) < 0.05
    assert abs((samples[-1].due - samples[0].due) - 0.19) < 1e-6


def test_percentiles_interpolate_between_samples():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([0, 10], 99) == 9.9
