"""The framework floor: bare Flask + psycopg reading one row by primary key.

Run under the same gunicorn settings as the services so that the benchmark's ratio
"suite GET one order / this" shows what the suite's own layers cost.
"""

from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, abort, jsonify

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
