"""The merged OpenAPI document holds for the running suite: schemathesis finds no failure.

Every check schemathesis has (no 5xx, only documented statuses, content types, headers and
bodies that match their schemas, invalid data refused, valid data accepted, no operation
that ignores a missing token, ...) on requests it generates for every operation of the
gateway's /openapi.json, as a verified user and as an admin, a few examples each. The
command is the one `make fuzz` runs with more examples against a suite of your own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.suite import Suite
from tests.e2e.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    E2E_WORKERS,
    PASSWORD,
    e2e_options,
    run_suite,
)
from tests.support import verification_link

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "scripts" / "fuzz.py"
# Per operation and phase: enough to reach every operation's documented answers, few
# enough for the whole module (suite start included) to take about a minute.
MAX_EXAMPLES = 3
# The same requests on every run: `make test` stays repeatable, and a failure here can be
# replayed. `make fuzz` (more examples, a new seed each time) is where new cases turn up.
SEED = 16


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Iterator[Suite]:
    """The e2e suite, with what mails the verification link (the delivery worker, the sink)."""
    options = e2e_options(
        tmp_path_factory.mktemp("e2e-fuzz"),
        workers=(*E2E_WORKERS, "notifications.deliver", "notifications.smtp"),
        # Generous limits for this instance: schemathesis logs in with made-up addresses
        # and passwords many times, and each 429 would cost it a Retry-After of waiting.
        AUTH_LOGIN_MAX_FAILURES="100000",
        AUTH_LOGIN_ACCOUNT_MAX_FAILURES="100000",
        GATEWAY_RATE_LIMIT_USER="100000/minute",
        GATEWAY_RATE_LIMIT_IP="100000/minute",
    )
    yield from run_suite(options)


@pytest.fixture(scope="module")
def verified_user(suite: Suite) -> tuple[str, str]:
    """A user who registered and opened the mailed link: (email, password).

    Then the delivery worker stops: the webhooks schemathesis registers point at addresses
    it made up, and nothing is ever sent to them.
    """
    email = f"fuzz-{uuid.uuid4().hex[:6]}@e2e.example.com"
    registered = requests.post(
        suite.url("gateway", "/api/v1/auth/register"),
        json={"email": email, "password": PASSWORD, "name": "Fuzz"},
        timeout=10,
    )
    assert registered.status_code == 202, registered.text
    link = verification_link(suite.dir / "mail", email, timeout=60)
    # The link leads to auth through the gateway (AUTH_VERIFY_EMAIL_URL's default).
    verified = requests.get(link, timeout=10)
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True
    suite.stop_processes(["notifications.deliver"])
    return email, PASSWORD


# Two schemathesis runs of ~30 s each on an idle machine; a loaded one needs more.
@pytest.mark.timeout(600)
def test_schemathesis_finds_no_failure_as_a_user_or_as_an_admin(
    suite: Suite, verified_user: tuple[str, str]
) -> None:
    email, password = verified_user
    env = {
        **os.environ,
        "FUZZ_USER_EMAIL": email,
        "FUZZ_USER_PASSWORD": password,
        "FUZZ_ADMIN_EMAIL": ADMIN_EMAIL,
        "FUZZ_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    command = [
        sys.executable,
        str(FUZZ),
        "--url",
        suite.url("gateway"),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--",
        "--seed",
        str(SEED),
    ]

    run = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )

    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-30000:]
    operations = len(
        [
            method
            for item in requests.get(suite.url("gateway", "/openapi.json"), timeout=10)
            .json()["paths"]
            .values()
            for method in item
            if method in {"get", "post", "put", "patch", "delete"}
        ]
    )
    # Both identities ran, and each tested every operation of the document.
    assert output.count("fuzz: as ") == 2, output
    tested = re.findall(r"Tested: (\d+)", output)
    assert tested == [str(operations)] * 2, output
