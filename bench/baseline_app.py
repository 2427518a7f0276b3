"""The framework floor: bare Flask + psycopg reading one row by primary key, and inserting one.

Run under the same gunicorn settings as the services so that the benchmark's ratios
"suite GET one order / GET /items/<id>" and "suite POST an order / POST /orders" show what
the suite's own layers cost.
"""

from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, abort, jsonify, request
from psycopg.types.json import Jsonb

app = Flask(__name__)
_local = threading.local()


def _connection() -> psycopg.Connection:
    # One connection per worker thread, opened on first use (after gunicorn forks).
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["BASELINE_DATABASE_URL"], autocommit=True)
        _local.conn = conn
    return conn


@app.get("/items/<int:item_id>")
def get_item(item_id: int):
    row = (
        _connection()
        .execute("SELECT id, name, price_cents FROM items WHERE id = %s", (item_id,))
        .fetchone()
    )
    if row is None:
        abort(404)
    return jsonify(id=row[0], name=row[1], price_cents=row[2])


@app.post("/orders")
def post_order():
    # The least a write endpoint does: read the JSON body, insert one row in a transaction
    # of its own, commit, answer with the new id.
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        abort(400)
    conn = _connection()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO placed (currency, body) VALUES (%s, %s) RETURNING id",
            (str(body.get("currency", "")), Jsonb(body)),
        ).fetchone()
    assert row is not None
    return jsonify(id=row[0]), 201
