"""Per-second buckets of an open-loop run, and the steady notification rate read from them."""

from __future__ import annotations

import math

from bench.events import Sample
from bench.pipeline import MailRun
from bench.timeline import per_second, steady_rate


def sample(sent: float, order_id: str | None) -> Sample:
    return Sample(due=sent, sent=sent, answered=sent + 0.02, status=201 if order_id else 500,
                  order_id=order_id)  # fmt: skip


def test_sends_and_notifications_fall_in_the_second_they_happened():
    samples = [sample(100.1, "a"), sample(100.6, "b"), sample(101.2, "c")]
    notified = {"a": 100.15, "b": 101.1, "c": 102.7}

    buckets = per_second(samples, notified, start=100.0)

    assert [b["sent"] for b in buckets] == [2, 1, 1 - 1]
    assert [b["notified"] for b in buckets] == [1, 1, 1]
    assert [b["second"] for b in buckets] == [0, 1, 2]


def test_a_seconds_latency_belongs_to_the_orders_sent_in_it():
    samples = [sample(100.0 + k / 100, str(k)) for k in range(100)]
    notified = {str(k): 100.0 + k / 100 + (1.0 if k == 99 else 0.05) for k in range(100)}

    buckets = per_second(samples, notified, start=100.0)

    assert math.isclose(buckets[0]["p50_ms"], 50.0, abs_tol=1e-6)
    assert buckets[0]["p99_ms"] > 50.0  # the one slow order pulls the tail
    assert buckets[1]["sent"] == 0 and math.isnan(buckets[1]["p99_ms"])
    assert sum(b["notified"] for b in buckets) == 100


def test_an_order_never_notified_is_sent_but_has_no_latency():
    buckets = per_second([sample(5.5, "x"), sample(5.7, None)], {}, start=5.0)

    assert buckets == [{"second": 0, "sent": 2, "notified": 0, "p50_ms": buckets[0]["p50_ms"],
                        "p99_ms": buckets[0]["p99_ms"]}]  # fmt: skip
    assert math.isnan(buckets[0]["p99_ms"])


def test_the_steady_rate_leaves_out_the_first_and_last_second():
    buckets = [{"notified": n} for n in (120, 300, 302, 298, 300, 180, 40)]

    assert steady_rate(buckets, seconds=6) == (300 + 302 + 298 + 300) / 4


def test_a_pipeline_that_falls_behind_shows_its_own_rate_not_the_offered_one():
    buckets = [{"notified": n} for n in [100] + [210] * 8 + [210] * 20]

    assert steady_rate(buckets, seconds=10) == 210


def test_a_short_run_counts_every_second_and_no_run_has_no_rate():
    assert steady_rate([{"notified": 280}, {"notified": 300}], seconds=2) == 290
    assert math.isnan(steady_rate([], seconds=5))


def test_mail_throughput_leaves_the_delivery_process_start_up_out():
    run = MailRun(mails=1001, first_seconds=2.0, seconds=4.0)

    assert run.rate == 500
    assert math.isnan(MailRun(mails=1, first_seconds=1.0, seconds=1.0).rate)
