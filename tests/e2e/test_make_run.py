"""`make run` as a new user runs it: SQLite files, the local SMTP sink, one supervisor.

Everything `make run` starts runs for real on free ports, a fresh vhost and a temporary
var/ directory; the test talks to the gateway only and stops the run as Ctrl-C would.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import GATEWAY_POLL_INTERVAL, ROOT
from tests.support import free_port, spawn, verification_link, wait_for

pytestmark = pytest.mark.e2e


@dataclass
class LocalRun:
    """A `make run` in its own process group."""

    process: subprocess.Popen
    gateway: str
    var_dir: Path

    def group_alive(self) -> bool:
        """True while any process of the run's group is left."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the whole foreground group, then wait for it to empty."""
        if self.group_alive():
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
            wait_for(lambda: not self.group_alive(), timeout=30, what="every process stopped")
        finally:
            if self.group_alive():
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, amqp_url):
    """Start `make run` on free ports and wait until its gateway is ready.

    One run for the module, as one person trying the suite would use it: each test signs up
    a user of its own, and the last one stops it with Ctrl-C (starting `make run` takes most
    of a test's time, a minute on a busy machine).
    """
    tmp_path = tmp_path_factory.mktemp("make-run")
    ports = {name: free_port() for name in ("GATEWAY", "AUTH", "ORDERS", "NOTIFICATIONS", "SMTP")}
    env = {k: v for k, v in os.environ.items() if k != "APP_ENV"}  # make run's own default
    env.update({f"{name}_PORT": str(port) for name, port in ports.items()})
    env.update(AMQP_URL=amqp_url, VAR_DIR=str(tmp_path / "var"), LOG_LEVEL="WARNING")
    process = spawn(
        ["make", "--no-print-directory", "run"],
        log=tmp_path / "make-run.log",
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    run = LocalRun(process, f"http://127.0.0.1:{ports['GATEWAY']}", tmp_path / "var")
    try:
        wait_for(
            lambda: _ready(run),
            timeout=90,
            interval=GATEWAY_POLL_INTERVAL,
            what="make run's gateway ready",
        )
        yield run
    finally:
        run.interrupt()


def _ready(run: LocalRun) -> bool:
    if run.process.poll() is not None:
        pytest.fail(f"make run exited with {run.process.returncode}")
    try:
        # "ok", not just 200: every upstream is ready too, not only the gateway.
        return requests.get(f"{run.gateway}/readyz", timeout=2).json().get("status") == "ok"
    except requests.RequestException:
        return False


def test_a_user_registered_under_make_run_verifies_by_mail_then_gets_the_welcome(local_run):
    api = f"{local_run.gateway}/api/v1"
    credentials = {"email": "grace@example.com", "password": "correct horse battery"}
    registered = requests.post(
        f"{api}/auth/register", json={**credentials, "name": "Grace"}, timeout=10
    )
    assert registered.status_code == 202, registered.text
    assert (local_run.var_dir / "auth.db").exists()  # SQLite, as the README says
    # Someone else tries the same address: the same answer, and no warning mail, since an
    # unverified address receives the link and nothing else.
    again = requests.post(
        f"{api}/auth/register",
        json={"email": "grace@example.com", "password": "someone else's guess", "name": "Eve"},
        timeout=10,
    )
    assert (again.status_code, again.json()) == (202, registered.json())

    # The README's walk-through: the link from the mail under var/mail/, then log in.
    mail_dir = local_run.var_dir / "mail"
    link = verification_link(mail_dir, "grace@example.com", timeout=30)
    assert link.startswith(f"{api}/auth/verify-email?token=")
    verified = requests.get(link, timeout=10)
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True

    token = requests.post(f"{api}/auth/login", json=credentials, timeout=10).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    notifications = wait_for(
        lambda: requests.get(f"{api}/notifications", headers=headers, timeout=10).json()["items"],
        timeout=30,
        interval=GATEWAY_POLL_INTERVAL,
        what="welcome notification",
    )
    assert {item["event_type"] for item in notifications} >= {"user.registered"}

    def subjects() -> list[str] | None:
        mails = [message_from_bytes(path.read_bytes()) for path in sorted(mail_dir.glob("*.eml"))]
        # Grace's only: the other tests' users share this run's mail directory.
        found = [mail["Subject"] for mail in mails if mail["To"] == "grace@example.com"]
        return found if len(found) >= 2 else None

    # The welcome was held back until the address was verified; the attempt made while it
    # was unverified mailed nothing (auth's events reach notifications in order).
    assert sorted(wait_for(subjects, timeout=30, what="welcome mail")) == [
        "Verify your email address",
        "Welcome to Flask Suite",
    ]
    # Now verified, the owner hears of the next attempt.
    requests.post(f"{api}/auth/register", json={**credentials, "name": "Eve"}, timeout=10)
    wait_for(lambda: len(subjects() or []) == 3, timeout=30, what="the warning mail")
    assert "Someone tried to register with your email address" in (subjects() or [])


def test_under_make_run_a_rotated_x_forwarded_for_escapes_no_limit(local_run):
    # The gateway faces clients itself here: it believes no X-Forwarded-For, and auth
    # believes only the hop the gateway appends.
    api = f"{local_run.gateway}/api/v1"
    credentials = {"email": "hopper@example.com", "password": "correct horse battery"}
    registered = requests.post(
        f"{api}/auth/register", json={**credentials, "name": "Grace"}, timeout=10
    )
    assert registered.status_code == 202, registered.text
    statuses = [
        requests.post(
            f"{api}/auth/login",
            json={**credentials, "password": "wrong guess number one"},
            headers={"X-Forwarded-For": f"198.51.100.{attempt}"},
            timeout=10,
        ).status_code
        for attempt in range(6)
    ]
    assert statuses == [401] * 5 + [429]

    # Nor the gateway's own per-address limit: one bucket, whatever the header says.
    with requests.Session() as http:  # one kept-alive connection: one gunicorn worker
        remaining = [
            int(
                http.get(
                    f"{api}/auth/jwks.json",
                    headers={"X-Forwarded-For": f"203.0.113.{attempt}"},
                    timeout=10,
                ).headers["RateLimit-Remaining"]
            )
            for attempt in range(3)
        ]
    assert remaining[0] > remaining[1] > remaining[2]


def test_make_run_seeds_a_catalogue_that_prices_orders(local_run):
    api = f"{local_run.gateway}/api/v1"
    catalogue = requests.get(f"{api}/products", timeout=10)  # anyone, no token
    assert catalogue.status_code == 200, catalogue.text
    prices = {p["sku"]: p["unit_price_cents"] for p in catalogue.json()["items"]}
    assert {"BOOK-1", "PEN-7"} <= set(prices)

    credentials = {"email": "ada@example.com", "password": "correct horse battery"}
    registered = requests.post(
        f"{api}/auth/register", json={**credentials, "name": "Ada"}, timeout=10
    )
    assert registered.status_code == 202, registered.text
    token = requests.post(f"{api}/auth/login", json=credentials, timeout=10).json()
    order = {
        "currency": "EUR",
        "items": [{"sku": "BOOK-1", "quantity": 2}, {"sku": "PEN-7", "quantity": 1}],
    }
    placed = requests.post(
        f"{api}/orders",
        json=order,
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["total_cents"] == 2 * prices["BOOK-1"] + prices["PEN-7"]


# Last in the module: it ends the run the others share.
def test_ctrl_c_stops_every_process_make_run_started(local_run):
    local_run.interrupt()
    assert not local_run.group_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{local_run.gateway}/healthz", timeout=2)
