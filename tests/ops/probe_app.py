"""A tiny app built like the services (create_base_app), served by gunicorn in the ops tests.

`/slow` marks its start in PROBE_MARKER_DIR (so a test knows the request is in flight),
sleeps, then answers; `/pid` tells which gunicorn worker answered; `/status/<code>` answers
with that status code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from shared.app import create_base_app


def create_app() -> Flask:
    """The probe app; it has no database and no broker."""
    app = create_base_app("probe", __name__, {})

    @app.get("/pid")
    def pid() -> ResponseReturnValue:
        return jsonify(pid=os.getpid())

    @app.get("/slow")
    def slow() -> ResponseReturnValue:
        seconds = float(request.args.get("seconds", "1.5"))
        marker_dir = os.environ.get("PROBE_MARKER_DIR")
        if marker_dir:
            (Path(marker_dir) / f"started-{os.getpid()}-{time.monotonic_ns()}").touch()
        time.sleep(seconds)
        return jsonify(done=True, pid=os.getpid())

    @app.get("/status/<int:code>")
    def status(code: int) -> ResponseReturnValue:
        return "", code

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    return app


app = create_app()
