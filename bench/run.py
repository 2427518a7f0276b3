"""`make bench` / `make bench-quick`: the suite under gunicorn on this machine, driven by wrk.

    python -m bench.run [--quick] [--runs N] [--seconds S] [--connections C]

Starts the whole suite (fresh databases, a fresh vhost, a temporary signing key), the bare
Flask + psycopg baseline under the same gunicorn settings, the plain pika consumer baseline
and the nginx edge; seeds users, tokens and orders; then measures HTTP paths (each beside
its baseline), logins, the outbox relay, the consumer (beside its baseline), mail delivery,
end-to-end latency at fixed rates, a sustained open-loop run and the backlog drain after a
broker outage (on a second RabbitMQ node of its own). Writes bench/results/<date>.json, a
chart next to it and the results section of BENCHMARKS.md.

The modules, by job: `plan` (what to run), `harness` (the run's state), `seeding`,
`phases_http`, `phases_events`, `phases_outage` (the measurements), `record` (JSON,
chart, Markdown).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench import phases_events, phases_http, phases_outage, record, report
from bench.harness import Bench
from bench.plan import parse_args, plan_for
from bench.wrk import WrkError, wrk_path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write its results."""
    args = parse_args(argv, description=__doc__)
    plan = plan_for(args)
    try:
        wrk_path()
    except WrkError as exc:
        raise SystemExit(str(exc)) from None
    bench = Bench(plan, args)
    try:
        bench.setup()
        record.describe(bench)
        phases_http.http(bench)
        phases_events.relay(bench)
        phases_events.consumer(bench)
        phases_events.mail(bench)
        phases_events.e2e(bench)
        # Before the sustained run: its tens of thousands of emails would still be queued
        # for delivery when the outage phase registers (and verifies by mail) its user.
        try:
            phases_outage.outage(bench)
        except Exception as exc:  # noqa: BLE001 - the other figures are still worth writing
            bench.log(f"outage phase failed: {exc}")
            bench.results["events"]["outage"] = {"not_run": f"failed: {exc}"}
        phases_events.sustained(bench)
        if plan.profile_seconds and not args.no_profile:
            phases_http.profiles(bench)
        json_path, chart_path = record.finish(bench)
    finally:
        bench.close()
    root = record.ROOT
    bench.log(f"done: {json_path.relative_to(root)}, {chart_path.relative_to(root)}, BENCHMARKS.md")
    for line in report.http_table(bench.results) + [""] + report.targets_table(bench.results):
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
