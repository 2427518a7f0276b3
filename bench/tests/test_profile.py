"""Reading py-spy's collapsed stacks: where the samples went, by function and by library."""

from __future__ import annotations

from pathlib import Path

from bench.profile import summarize


def test_samples_are_shared_out_by_function_and_by_library(tmp_path: Path):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        'process 1:"gunicorn";handle (gunicorn/workers/gthread.py:10);'
        "get (services/orders/api.py:5);execute (sqlalchemy/engine/base.py:3) 3\n"
        "handle (gunicorn/workers/gthread.py:10);verify (jwt/api_jws.py:7) 1\n"
    )

    profile = summarize(raw)

    assert profile["samples"] == 4
    assert dict(profile["self"]) == {
        "execute (sqlalchemy/engine/base.py)": 0.75,
        "verify (jwt/api_jws.py)": 0.25,
    }
    assert dict(profile["by_library"]) == {"sqlalchemy": 0.75, "jwt": 0.25}
    # A frame in every sample (gunicorn's loop) says nothing and is left out.
    assert "handle (gunicorn/workers/gthread.py)" not in dict(profile["inclusive"])
    assert dict(profile["inclusive"])["get (services/orders/api.py)"] == 0.75
