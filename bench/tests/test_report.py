"""What a benchmark run reports: medians with spread, targets, and the Markdown it rewrites."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench import report
from bench.targets import targets as targets_of


def cell(rps: list[float], errors: int = 0) -> dict[str, Any]:
    runs = [
        {
            "rps": r,
            "p50_ms": 2.0,
            "p99_ms": 9.0,
            "errors": errors,
            "requests": 100,
            "generator_cpu_share": 0.1,
        }
        for r in rps
    ]
    return {"runs": runs, "summary": report.http_cell(runs)}


def results(**events: Any) -> dict[str, Any]:
    return {
        "http": {
            "get_one": {
                "direct": cell([1000, 900, 1100]),
                "gateway": cell([400, 450, 500]),
                "edge": cell([800, 780, 820]),
            },
            "baseline": {"direct": cell([2000, 2100, 1900])},
        },
        "events": {
            "relay": {
                "events": 1000,
                "batch_size": 500,
                "runs_count": 3,
                "summary": report.summarize([3500, 3600, 3400]),
            },
            "e2e": {
                "50": {
                    "orders": 100,
                    "runs": [{"errors": 0, "missing": 0}],
                    "summary": {
                        "p50_ms": report.summarize([80.0]),
                        "p99_ms": report.summarize([150.0]),
                        "max_lateness_ms": report.summarize([2.0]),
                    },
                }
            },
            **events,
        },
    }


ERRORS_TARGET = "errors (non-2xx, socket errors, lost notifications) in every run"


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["target"]: item for item in items}


def test_a_summary_is_the_median_with_its_spread():
    assert report.summarize([3, 1, 2]) == {"median": 2, "min": 1, "max": 3, "n": 3}
    assert math.isnan(report.summarize([])["median"])


def test_targets_compare_ratios_of_medians_and_say_how_far_they_are():
    targets = by_name(targets_of(results()))

    gateway = targets["gateway / direct, GET one order"]
    assert gateway["measured"] == 0.45 and gateway["met"] is False
    assert gateway["how_far"] == "90% of the target"
    assert targets["nginx fast path / direct, GET one order"]["met"] is True
    assert targets["suite direct / bare baseline, GET one order"]["measured"] == 0.5
    assert targets["outbox relay, events/s"]["met"] is True
    assert targets["end-to-end p99 at 50 orders/s, ms"]["how_far"] == "250% of the limit"


def test_one_failed_request_anywhere_misses_the_zero_error_target():
    data = results(outage={"post_errors": 1})

    errors = by_name(targets_of(data))[ERRORS_TARGET]

    assert errors["measured"] == 1 and errors["met"] is False


def test_an_order_whose_notification_never_appeared_misses_the_zero_error_target():
    data = results()
    data["events"]["e2e"]["50"]["runs"] = [{"errors": 0, "missing": 2}]

    errors = by_name(targets_of(data))[ERRORS_TARGET]

    assert errors["measured"] == 2 and errors["met"] is False


def test_end_to_end_latency_counts_from_the_moment_the_post_was_sent():
    data = results()
    data["events"]["e2e"]["50"]["summary"]["from_send_p50_ms"] = report.summarize([90.0])
    data["events"]["e2e"]["50"]["summary"]["from_send_p99_ms"] = report.summarize([180.0])

    e2e = by_name(targets_of(data))["end-to-end p99 at 50 orders/s, ms"]

    assert e2e["measured"] == 180.0 and e2e["met"] is False
    assert e2e["required"] == 60.0
    assert "90.0 (90.0–90.0) / 180.0 (180.0–180.0)" in "\n".join(report.events_table(data))


def test_a_measurement_not_run_is_reported_as_such():
    data = results()
    data["http"]["get_one"]["edge"] = {"not_run": "nginx is not installed"}

    edge = by_name(targets_of(data))["nginx fast path / direct, GET one order"]

    assert edge["met"] is None and edge["how_far"] == "not run"
    assert "not run" in "\n".join(report.http_table(data))


def _described(data: dict[str, Any], mode: str) -> dict[str, Any]:
    data["meta"] = {
        "started": "today",
        "mode": mode,
        "command": f"make bench ({mode})",
        "runs": 3,
        "cpus": 2,
        "cpu_model": "cpu",
        "memory_gib": 24,
        "load_before": "0.1",
        "json": "x.json",
        "chart": "x.png",
    }
    data["settings"] = dict.fromkeys(("gunicorn", "wrk", "nginx", "argon2", "versions"), "s")
    data["targets"] = targets_of(data)
    return data


def test_the_markdown_section_is_replaced_and_the_prose_around_it_kept(tmp_path: Path):
    page = tmp_path / "BENCHMARKS.md"
    page.write_text(f"# Benchmarks\n\nprose before\n\n{report.BEGIN}\nold\n{report.END}\n\nafter\n")

    report.update_markdown(page, _described(results(), "full"))

    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nprose before")
    assert text.rstrip().endswith("after")
    assert "old" not in text
    assert "| GET one order | 1,000 (900–1,100)" in text


def test_a_quick_run_leaves_the_full_runs_figures_alone(tmp_path: Path):
    page = tmp_path / "BENCHMARKS.md"
    page.write_text(f"# Benchmarks\n\n{report.BEGIN}\nfull figures\n{report.END}\n\nanalysis\n")

    report.update_markdown(page, _described(results(), "quick"))
    report.update_markdown(page, _described(results(), "quick"))

    text = page.read_text()
    assert f"{report.BEGIN}\nfull figures\n{report.END}" in text
    assert "analysis" in text
    assert text.count(report.QUICK_BEGIN) == 1
    quick = text.split(report.QUICK_BEGIN, 1)[1].split(report.QUICK_END, 1)[0]
    assert "| GET one order | 1,000 (900–1,100)" in quick


def test_post_and_consumer_targets_show_their_baseline_of_the_same_run_and_the_ratio():
    data = results(
        consumer={"events": 300, "runs": [], "summary": report.summarize([150, 160, 140])},
        consumer_baseline={"events": 300, "runs": [], "summary": report.summarize([2000.0])},
    )
    data["http"]["post"] = {"direct": cell([120, 125, 110])}
    data["http"]["baseline_post"] = {"direct": cell([1200, 1250, 1300])}

    targets = by_name(targets_of(data))

    post = targets["POST an order, direct, req/s"]
    assert (post["measured"], post["met"], post["how_far"]) == (120, False, "24% of the target")
    assert post["baseline"]["measured"] == 1250 and post["baseline"]["ratio"] == 120 / 1250
    consumer = targets["notifications consumer, order.created, one process, events/s"]
    assert consumer["baseline"]["ratio"] == 150 / 2000
    data["targets"] = targets_of(data)
    rows = {row.split(" | ")[0][2:]: row for row in report.targets_table(data)[2:]}
    assert rows[post["target"]].endswith("1,250 req/s; suite / baseline **0.10** |")
    assert rows[consumer["target"]].endswith("2,000 events/s; suite / baseline **0.07** |")


def test_a_target_without_its_baseline_says_so_instead_of_inventing_a_ratio():
    data = results()
    data["http"]["post"] = {"direct": cell([120])}

    post = by_name(targets_of(data))["POST an order, direct, req/s"]

    assert "baseline" not in post
    data["targets"] = [post]
    assert report.targets_table(data)[-1].endswith("| — |")


def sustained(missing: int, rate: float = 300.0, p99: float = 400.0) -> dict[str, Any]:
    return {
        "rate": 300,
        "seconds": 60,
        "orders": 18_000,
        "runs": [{"errors": 0, "missing": missing, "per_second": []}],
        "summary": {
            "rate": report.summarize([rate]),
            "from_send_p50_ms": report.summarize([50.0]),
            "from_send_p99_ms": report.summarize([p99]),
            "max_lateness_ms": report.summarize([3.0]),
        },
    }


def test_the_sustained_run_meets_its_targets_only_with_rate_latency_and_nothing_lost():
    kept_up = by_name(targets_of(results(sustained=sustained(0))))
    offered = "(300/s offered for 60 s)"
    assert kept_up[f"orders through the gateway and notified, per s {offered}"]["met"] is True
    assert kept_up[f"p99 POST sent → notification row, ms {offered}"]["met"] is True
    assert kept_up[f"orders lost {offered}"]["how_far"] == "none"

    lost = by_name(targets_of(results(sustained=sustained(3, rate=210, p99=900))))
    assert lost[f"orders lost {offered}"]["met"] is False
    assert lost[f"orders through the gateway and notified, per s {offered}"]["met"] is False
    assert lost[f"p99 POST sent → notification row, ms {offered}"]["how_far"] == "180% of the limit"
    assert lost[ERRORS_TARGET]["measured"] == 3


def test_mail_and_backlog_targets_read_their_medians():
    data = results(
        mail={"summary": report.summarize([400.0, 600.0, 520.0])},
        outage={"events": 10_000, "post_errors": 0, "summary": {
            "drain_seconds": report.summarize([12.0, 20.0, 14.0])}},
    )  # fmt: skip

    targets = by_name(targets_of(data))

    assert targets["mails to the SMTP sink, one delivery process, mails/s"]["measured"] == 520
    backlog = targets["backlog of 10,000 events after a broker outage, drained in s"]
    assert backlog["measured"] == 14.0 and backlog["met"] is True


def test_the_chart_gets_a_panel_for_the_sustained_run(tmp_path: Path):
    from bench.chart import chart

    buckets = [
        {"second": k, "sent": 300, "notified": 290 + k, "p50_ms": 40.0, "p99_ms": 90.0 + k}
        for k in range(5)
    ]
    data = _described(results(sustained=sustained(0)), "quick")
    data["events"]["sustained"]["runs"][0]["per_second"] = buckets
    without = _described(results(), "quick")

    chart(tmp_path / "with.png", data)
    chart(tmp_path / "without.png", without)

    import matplotlib.image

    tall = matplotlib.image.imread(tmp_path / "with.png").shape[0]
    short = matplotlib.image.imread(tmp_path / "without.png").shape[0]
    assert tall > short * 1.4
