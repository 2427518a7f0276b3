"""What a login costs auth, by outcome, with the throttle in the way: statements and CPU.

    python -m bench.login_path [--logins 40]

In-process (Flask's test client), auth on a throwaway PostgreSQL database migrated for
real, argon2id at the production defaults (19 MiB, t=2, p=1). Three kinds of attempt:

- a correct password (the attempt is recorded as a failure first, committed, then deleted);
- a wrong one, each from a new address for an unknown email (recorded and kept; the
  password check runs against a dummy hash, so it costs what a known account's does);
- a throttled one: a sixth attempt of one address for one email within the window, which
  gets its 429 before any password is checked.

Per attempt: SQL statements (commits counted) and this process's CPU milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.auth.models import db
from services.auth.tests.conftest import PASSWORD, AuthActions, dispose, make_app, migrate
from tests.support import counting_statements, create_database, drop_database

PRODUCTION_ARGON2: dict[str, Any] = {"AUTH_ARGON2_TIME_COST": 2, "AUTH_ARGON2_MEMORY_KIB": 19456}


def measure(
    app: Any, attempt: Callable[[int], Any], status: int, count: int
) -> tuple[float, float]:
    """Statements and CPU ms per attempt over `count` attempts (each must answer `status`)."""
    with app.app_context():
        engine = db.engine
    with counting_statements(engine) as statements:
        started = time.process_time()
        for n in range(count):
            response = attempt(n)
            assert response.status_code == status, (response.status_code, response.get_json())
        cpu = time.process_time() - started
    return statements.total() / count, cpu * 1000 / count


def main(argv: list[str] | None = None) -> int:
    """Print one line per kind of attempt."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=40)
    args = parser.parse_args(argv)
    url = create_database("bench_auth")
    try:
        with tempfile.TemporaryDirectory() as directory:
            app = make_app(url, Path(directory) / "keys", **PRODUCTION_ARGON2)
            migrate(app)
            auth = AuthActions(app.test_client())
            assert auth.register().status_code == 202

            def address(n: int) -> Any:
                return {"environ_base": {"REMOTE_ADDR": f"10.{n // 250}.{n % 250}.9"}}

            for _ in range(3):  # warm up
                auth.login(**address(0))
            kinds = {
                "correct password (200)": measure(
                    app, lambda n: auth.login(**address(n)), 200, args.logins
                ),
                "wrong password, unknown email (401)": measure(
                    app,
                    lambda n: auth.login(
                        f"nobody-{uuid.uuid4().hex[:8]}@example.com",
                        "wrong " + PASSWORD,
                        **address(1000 + n),
                    ),
                    401,
                    args.logins,
                ),
            }
            throttled: Any = {"environ_base": {"REMOTE_ADDR": "10.99.99.99"}}
            for _ in range(5):
                auth.login(password="wrong " + PASSWORD, **throttled)
            kinds["throttled: 6th attempt of one address (429)"] = measure(
                app, lambda _n: auth.login(**throttled), 429, args.logins
            )
            for kind, (statements, cpu_ms) in kinds.items():
                sys.stdout.write(
                    f"{kind:<46} {statements:5.1f} statements, {cpu_ms:7.2f} ms CPU per attempt\n"
                )
            dispose(app)
    finally:
        drop_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
