"""Event phases: outbox relay, consumer (beside its plain baseline), mail delivery, end-to-end
latency at fixed rates and the sustained open-loop run."""

from __future__ import annotations

import functools
import time
import uuid
from typing import TYPE_CHECKING, Any

from bench import events as ev
from bench import pipeline, report, seeding, timeline
from tests.support import wait_for

if TYPE_CHECKING:
    from bench.harness import Bench


def relay(bench: Bench) -> None:
    """Outbox relay throughput."""
    bench.log(f"outbox relay: {bench.plan.relay_events:,} rows x {bench.plan.runs}")
    runs = bench.measure(
        "outbox relay (runs in the driver)",
        lambda: ev.relay_throughput(events=bench.plan.relay_events, runs=bench.plan.runs),
    )
    short = [r for r in runs if r.queued != r.events]
    if short:
        raise RuntimeError(f"relay: queue got {short[0].queued} of {short[0].events} events")
    bench.results["events"]["relay"] = {
        "events": bench.plan.relay_events,
        "batch_size": 500,
        "runs_count": len(runs),
        "runs": [{"seconds": r.seconds, "rate": r.rate} for r in runs],
        "summary": report.summarize([r.rate for r in runs]),
    }


def consumer(bench: Bench) -> None:
    """Notifications consumer throughput, each run followed by one of the plain consumer."""
    plan = bench.plan
    bench.log(f"consumer: {plan.consumer_events:,} events x {plan.runs}, with its baseline")
    suite_runs: list[ev.ConsumerRun] = []
    baseline_runs: list[ev.ConsumerRun] = []
    baseline = bench.baseline_consumer
    for _ in range(plan.runs):
        bench.settle()
        suite_runs += bench.measure(
            "notifications consumer",
            lambda: ev.consumer_throughput(
                amqp_urls=bench.suite.service_amqp_urls,
                amqp_url=bench.suite.amqp_url,
                notifications_db=bench.suite.database_urls["notifications"],
                events=plan.consumer_events,
                runs=1,
            ),
        )
        if baseline is not None:
            bench.settle()
            baseline_runs.append(
                bench.measure(
                    "plain pika consumer (baseline)",
                    functools.partial(
                        pipeline.baseline_consumer_run,
                        amqp_url=baseline.amqp_url,
                        db_url=baseline.db_url,
                        events=plan.consumer_events,
                    ),
                )
            )

    def described(runs: list[ev.ConsumerRun]) -> dict[str, Any]:
        return {
            "events": plan.consumer_events,
            "runs": [
                {"seconds": r.seconds, "publish_seconds": r.publish_seconds, "rate": r.rate}
                for r in runs
            ],
            "summary": report.summarize([r.rate for r in runs]),
        }

    bench.results["events"]["consumer"] = described(suite_runs)
    if baseline_runs:
        bench.results["events"]["consumer_baseline"] = described(baseline_runs)


def mail(bench: Bench) -> None:
    """Emails pending delivery, then one delivery process started: time until all are sent."""
    plan = bench.plan
    count = plan.mail_count
    bench.log(f"mail delivery: {count:,} emails pending x {plan.runs}")
    notifications_db = bench.suite.database_urls["notifications"]
    runs: list[pipeline.MailRun] = []
    for _ in range(plan.runs):
        # Nothing else pending: the delivery process must send this run's emails only.
        seeding.settle(bench.suite, deliveries=True)
        bench.suite.stop_processes(["notifications.deliver"])
        user_id = f"bench-mail-{uuid.uuid4().hex[:12]}"
        publisher = ev.ProducerPublishers(bench.suite.service_amqp_urls, bench.suite.amqp_url)
        try:
            user = [ev.user_registered_event(user_id), ev.user_email_verified_event(user_id)]
            if not all(publisher.publish_batch(user)):
                raise RuntimeError("the broker did not confirm the mail benchmark's user")
            # The orders' emails exist only for a verified address: wait for it first.
            wait_for(
                functools.partial(pipeline.contact_verified, notifications_db, user_id),
                timeout=120,
                what="the mail benchmark's user verified",
            )
            batch = [ev.order_created_event(user_id) for _ in range(count)]
            for offset in range(0, len(batch), 500):
                if not all(publisher.publish_batch(batch[offset : offset + 500])):
                    raise RuntimeError("the broker did not confirm the mail benchmark's events")
        finally:
            publisher.close()
        wait_for(
            lambda: pipeline.email_deliveries(notifications_db, user_id)[0] >= count,  # noqa: B023
            timeout=600,
            interval=0.2,
            what=f"{count} email deliveries pending",
        )
        runs.append(bench.measure("mail delivery", functools.partial(_deliver, bench, user_id)))
    bench.results["events"]["mail"] = {
        "mails": count,
        "runs": [
            {"seconds": r.seconds, "first_seconds": r.first_seconds, "rate": r.rate} for r in runs
        ],
        "summary": report.summarize([r.rate for r in runs]),
        "first_seconds": report.summarize([r.first_seconds for r in runs]),
        "seconds": report.summarize([r.seconds for r in runs]),
    }


def _deliver(bench: Bench, user_id: str) -> pipeline.MailRun:
    count = bench.plan.mail_count
    db = bench.suite.database_urls["notifications"]
    started = time.time()
    bench.suite.start_worker("notifications.deliver")

    def all_sent() -> tuple[float, float] | None:
        _, sent, first, last = pipeline.email_deliveries(db, user_id)
        if sent < count or first is None or last is None:
            return None
        return first, last

    first, last = wait_for(all_sent, timeout=900, interval=0.1, what="every email sent")
    return pipeline.MailRun(count, first - started, last - started)


def e2e(bench: Bench) -> None:
    """End-to-end latency at fixed rates, open loop, through the gateway."""
    out: dict[str, Any] = {}
    for rate in (50, 200):
        runs = []
        for round_no in range(bench.plan.runs):
            bench.settle()
            bench.log(f"end-to-end at {rate}/s, run {round_no + 1}/{bench.plan.runs}")
            run = bench.measure(
                f"end-to-end at {rate} orders/s",
                functools.partial(
                    ev.e2e_latency,
                    post_url=bench.suite.url("gateway", "/api/v1/orders"),
                    tokens=[u.token for u in bench.users],
                    orders_db=bench.suite.database_urls["orders"],
                    notifications_db=bench.suite.database_urls["notifications"],
                    rate=rate,
                    seconds=bench.plan.e2e_seconds,
                ),
            )
            runs.append(
                {
                    "orders": run.orders,
                    "errors": run.errors,
                    "missing": run.missing,
                    "p50_ms": ev.percentile(run.latencies_ms, 50),
                    "p90_ms": ev.percentile(run.latencies_ms, 90),
                    "p99_ms": ev.percentile(run.latencies_ms, 99),
                    "max_ms": max(run.latencies_ms, default=float("nan")),
                    "from_send_p50_ms": ev.percentile(run.from_send_ms, 50),
                    "from_send_p99_ms": ev.percentile(run.from_send_ms, 99),
                    "max_lateness_ms": run.max_lateness_ms,
                }
            )
        out[str(rate)] = {
            "orders": runs[0]["orders"],
            "runs": runs,
            "summary": {
                key: report.summarize([r[key] for r in runs])
                for key in (
                    "from_send_p50_ms",
                    "from_send_p99_ms",
                    "p50_ms",
                    "p90_ms",
                    "p99_ms",
                    "max_ms",
                    "max_lateness_ms",
                )
            },
        }
    bench.results["events"]["e2e"] = out


def sustained(bench: Bench) -> None:
    """Orders through the gateway at a fixed rate for a sustained period, open loop: the
    notification throughput and latency per second, and every order accounted for."""
    plan = bench.plan
    rate, seconds = plan.sustained_rate, plan.sustained_seconds
    runs: list[dict[str, Any]] = []
    for round_no in range(plan.sustained_runs):
        bench.settle()
        bench.log(
            f"sustained {rate:.0f}/s for {seconds:.0f} s, run {round_no + 1}/{plan.sustained_runs}"
        )
        run: pipeline.SustainedRun = bench.measure(
            f"sustained at {rate:.0f} orders/s",
            functools.partial(
                pipeline.sustained,
                post_url=bench.suite.url("gateway", "/api/v1/orders"),
                tokens=[u.token for u in bench.users],
                orders_db=bench.suite.database_urls["orders"],
                notifications_db=bench.suite.database_urls["notifications"],
                rate=rate,
                seconds=seconds,
            ),
        )
        buckets = timeline.per_second(run.samples, run.notified, start=run.start)
        latencies = run.from_send_ms()
        runs.append(
            {
                "orders": len(run.samples),
                "errors": len(run.samples) - len(run.placed),
                "missing": run.lost,
                "rate": timeline.steady_rate(buckets, seconds),
                "from_send_p50_ms": ev.percentile(latencies, 50),
                "from_send_p99_ms": ev.percentile(latencies, 99),
                "max_lateness_ms": max(((s.sent - s.due) * 1000 for s in run.samples), default=0),
                "per_second": buckets,
            }
        )
    keys = ("rate", "from_send_p50_ms", "from_send_p99_ms", "max_lateness_ms")
    bench.results["events"]["sustained"] = {
        "rate": rate,
        "seconds": seconds,
        "orders": runs[0]["orders"] if runs else 0,
        "runs": runs,
        "summary": {key: report.summarize([r[key] for r in runs]) for key in keys},
    }
