"""The baselines do the least their suite counterparts do: one committed row per request or
per message, on the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pika
import psycopg
import pytest

from bench import events as ev
from bench import pipeline
from bench.suite import ROOT
from shared.messaging import declare_topology, queue_name
from tests import support


@pytest.fixture
def db() -> Iterator[str]:
    url = support.create_database("bench_baseline_test")
    try:
        yield ev.libpq_url(url)
    finally:
        support.drop_database(url)


@pytest.mark.integration
def test_the_insert_baseline_commits_one_row_per_order_and_refuses_a_body_without_items(
    db: str, monkeypatch: pytest.MonkeyPatch
):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE placed (id bigserial PRIMARY KEY, currency text NOT NULL,"
            " body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    monkeypatch.setenv("BASELINE_DATABASE_URL", db)
    from bench import baseline_app

    client = baseline_app.app.test_client()
    try:
        created = client.post("/orders", json=ev.ORDER_BODY)
        refused = client.post("/orders", json={"currency": "EUR"})
    finally:
        baseline_app._local.conn.close()  # the worker thread's connection, opened on first use

    assert created.status_code == 201 and refused.status_code == 400
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT id, body FROM placed").fetchall()
    assert rows == [(created.get_json()["id"], ev.ORDER_BODY)]


@pytest.mark.integration
def test_the_plain_consumer_writes_one_row_per_event_once(db: str):
    vhost, amqp_url = support.create_vhost("bench-baseline-test")
    process = None
    try:
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            declare_topology(
                connection.channel(), "bench-baseline", ["order.created"],
                delivery_limit=5, retry_delays=[1],
            )  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.baseline_consumer", queue_name("bench-baseline")],
            cwd=ROOT,
            env={**os.environ, "BASELINE_AMQP_URL": amqp_url, "BASELINE_DATABASE_URL": db},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(db) as conn:
                    conn.execute("SELECT 1 FROM consumed")
                break
            except psycopg.errors.UndefinedTable:
                time.sleep(0.1)
        assert process.poll() is None, "the baseline consumer did not start"

        run = pipeline.baseline_consumer_run(amqp_url=amqp_url, db_url=db, events=50)

        assert run.events == 50 and run.seconds > 0
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM consumed").fetchone()
        assert row == (50, 50)
    finally:
        if process is not None:
            process.terminate()
            assert process.wait(timeout=30) == 0
        support.delete_vhost(vhost)
