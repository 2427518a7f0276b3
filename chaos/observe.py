"""What a chaos run observed, counted against what the client was told: the verdict.

Reads every service's database, the mail sink's files, the webhook receiver's ids and the
broker's queues once the run has settled; `chaos.verdict` does the counting.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from bench.events import libpq_url
from chaos import inject, verdict

if TYPE_CHECKING:
    from chaos.run import Run


def outcome(run: Run) -> dict[str, Any]:
    """Count what happened against what was accepted; the verdict as a dict."""
    assert run.suite is not None
    suite = run.suite
    answers = list(run.answers)
    accepted = {a.order_id: a.user for a in answers if a.status == 201 and a.order_id}
    orders_db = suite.database_urls["orders"]
    notifications_db = suite.database_urls["notifications"]
    stored = _rows(orders_db, "SELECT id::text FROM orders")
    unknown = [row[0] for row in stored if row[0] not in accepted]
    notes = _rows(
        notifications_db,
        "SELECT subject_id, id::text FROM notifications WHERE event_type='order.created'",
    )
    deliveries = {
        row[0]: (row[1], row[2], row[3])
        for row in _rows(
            notifications_db,
            "SELECT d.id::text, d.channel, n.subject_id, d.endpoint_id::text FROM deliveries d"
            " JOIN notifications n ON n.id = d.notification_id"
            " WHERE n.event_type = 'order.created'",  # not the sign-up mails
        )
    }
    mails = []
    for delivery_id in _message_ids(suite.dir / "mail"):
        if delivery_id in deliveries:
            mails.append((deliveries[delivery_id][1], delivery_id))
    hooks = []
    for delivery_id in list(run.receiver.ids):
        if delivery_id in deliveries:
            _, order, endpoint = deliveries[delivery_id]
            hooks.append((f"{order}/{endpoint}", delivery_id))
        else:
            hooks.append((f"unknown/{delivery_id}", delivery_id))
    expected_hooks = [
        f"{order}/{run.endpoints[user]}"
        for order, user in accepted.items()
        if user in run.endpoints
    ]
    tallies = {
        "orders stored": verdict.tally(
            list(accepted), [(r[0], r[0]) for r in stored], ignore=unknown
        ),
        "notifications": verdict.tally(list(accepted), notes, ignore=unknown),
        "mails": verdict.tally(list(accepted), mails, ignore=unknown),
        "webhooks": verdict.tally(
            expected_hooks,
            hooks,
            ignore=[f"{o}/{e}" for o in unknown for e in run.endpoints.values()],
        ),
    }
    statuses = [a.status for a in answers]
    calls = list(run.calls)
    classes = verdict.classify(
        calls, run.faults, allows_503=inject.allows_503, resets=inject.RESETS_CONNECTIONS
    )
    queues = run._queues()
    leftovers = {
        "outbox unsent (auth, orders)": sum(
            scalar(suite.database_urls[s], "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            for s in ("auth", "orders")
        ),
        "deliveries pending": scalar(
            notifications_db, "SELECT count(*) FROM deliveries WHERE status='pending'"
        ),
        "deliveries failed": scalar(
            notifications_db, "SELECT count(*) FROM deliveries WHERE status='failed'"
        ),
        **{f"queue {name}": depth for name, depth in queues.items() if depth},
    }
    recoveries = [
        {
            "fault": f.kind,
            "target": f.target,
            "at": round(f.start, 1),
            "lasted": round(f.end - f.start, 1),
            "recovered_after": _round(
                verdict.recovery_time(
                    f,
                    [(s.at, s.backlog) for s in run.samples],
                    slack=int(run.rate * 2),
                )
            ),
            **verdict.during_fault(f, calls),
        }
        for f in sorted(run.faults, key=lambda f: f.start)
    ]
    passed = (
        all(t.ok for t in tallies.values())
        and verdict.forbidden_classes(classes) == 0
        and not any(leftovers.values())
        and not run.failed_faults
    )
    answered = [a for a in answers if a.status]
    span = max(a.answered for a in answered) - min(a.due for a in answered) if answered else 0
    return {
        "passed": passed,
        "achieved_rate": round(len(answered) / span, 1) if span else 0.0,
        "orders": {"placed": len(answers), "accepted": len(accepted), "unknown": len(unknown)},
        "tallies": verdict.summarize(tallies),
        "lost_examples": {k: t.lost[:5] for k, t in tallies.items() if t.lost},
        "duplicated_examples": {k: t.duplicated[:5] for k, t in tallies.items() if t.duplicated},
        "http_errors": verdict.http_errors(statuses),
        "forbidden_errors": verdict.forbidden_classes(classes),
        "error_classes": classes,
        "attempts": len(calls),
        "retried": sum(1 for a in answers if a.attempts > 1),
        "faults_by_kind": dict(Counter(f.kind for f in run.faults)),
        "faults_not_injected": list(run.failed_faults),
        "faults_skipped": dict(Counter(run.skipped_faults)),
        "leftovers": leftovers,
        "faults": recoveries,
        "restarts": dict(run.restarts),
        "users": len(run.people),
        "webhook_users": len(run.endpoints),
        "rate": run.rate,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def scalar(url: str, sql: str) -> int:
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as conn:
        return list(conn.execute(sql).fetchall())


_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([0-9a-f-]{36})@", re.IGNORECASE | re.MULTILINE)


def _message_ids(directory: Path) -> list[str]:
    """The delivery id in each mail's Message-ID, one entry per mail received."""
    found = []
    for path in directory.glob("*.eml"):
        head = path.read_bytes()[:4096]
        match = _MESSAGE_ID.search(head)
        if match:
            found.append(match.group(1).decode())
    return found
