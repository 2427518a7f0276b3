"""Schemathesis against a running suite: every check, as a verified user, then as an admin.

    make fuzz FUZZ_URL=http://127.0.0.1:8080 FUZZ_EXAMPLES=100
    python scripts/fuzz.py --url http://127.0.0.1:8080 --max-examples 100

Who it calls as comes from the environment: FUZZ_USER_EMAIL and FUZZ_USER_PASSWORD (a
verified user), FUZZ_ADMIN_EMAIL and FUZZ_ADMIN_PASSWORD (an admin: the bootstrap one of
AUTH_BOOTSTRAP_ADMIN_EMAIL/PASSWORD). Each logs in through the API's own login operation,
again before the 15-minute access token runs out, as a Web Fuzzing Commons auth document
tells schemathesis to. Requests go at the pace the suite's rate limits allow: on a 429
schemathesis waits for Retry-After (`--rate-limit auto`). The exit status is
schemathesis's: 0 only when no check failed for either identity.

It creates users, products, orders and webhooks with the data it generates: run it
against a suite of your own, never production. The webhooks it registers point wherever
it generated (e.g. https://example.com/...), and the delivery worker will POST there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

IDENTITIES = ("user", "admin")
LOGIN_PATH = "/api/v1/auth/login"


def wfc_auth_document(credentials: Mapping[str, tuple[str, str]]) -> dict[str, object]:
    """How schemathesis logs in as each identity: the login operation, the token it returns."""
    return {
        "schemaVersion": "1.0.0",
        "auth": [
            {
                "name": name,
                "loginEndpointAuth": {
                    "endpoint": LOGIN_PATH,
                    "verb": "POST",
                    "contentType": "application/json",
                    "payloadRaw": json.dumps({"email": email, "password": password}),
                    "token": {
                        "extractFrom": "body",
                        "extractSelector": "/access_token",
                        "sendIn": "header",
                        "sendName": "Authorization",
                        "sendTemplate": "Bearer {token}",
                    },
                },
            }
            for name, (email, password) in credentials.items()
        ],
    }


def schemathesis_argv(
    url: str, *, auth_file: Path, identity: str, max_examples: int, extra: Sequence[str] = ()
) -> list[str]:
    """One schemathesis run over the gateway's merged document, as one identity."""
    return [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url.rstrip('/')}/openapi.json",
        "--checks",
        "all",
        "--auth-wfc",
        str(auth_file),
        "--auth-wfc-user",
        identity,
        "--max-examples",
        str(max_examples),
        "--rate-limit",
        "auto",
        "--request-timeout",
        "20",
        # Examples stay out of the working tree (no .hypothesis/ database).
        "--generation-database",
        "none",
        "--no-color",
        *extra,
    ]


def credentials_from_env(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """(email, password) per identity from FUZZ_<IDENTITY>_EMAIL and FUZZ_<IDENTITY>_PASSWORD."""
    missing = [
        f"FUZZ_{name.upper()}_{part}"
        for name in IDENTITIES
        for part in ("EMAIL", "PASSWORD")
        if not env.get(f"FUZZ_{name.upper()}_{part}")
    ]
    if missing:
        raise SystemExit(f"fuzz: set {', '.join(missing)} (see the docstring of scripts/fuzz.py)")
    return {
        name: (env[f"FUZZ_{name.upper()}_EMAIL"], env[f"FUZZ_{name.upper()}_PASSWORD"])
        for name in IDENTITIES
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run schemathesis once per identity; the first failing run's status, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway's base URL")
    parser.add_argument("--max-examples", type=int, default=100, help="per operation and phase")
    parser.add_argument("extra", nargs="*", help="more schemathesis options, after --")
    args = parser.parse_args(argv)
    credentials = credentials_from_env(os.environ)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        auth_file = Path(scratch) / "auth.json"
        auth_file.write_text(json.dumps(wfc_auth_document(credentials)))
        for identity in IDENTITIES:
            command = schemathesis_argv(
                args.url,
                auth_file=auth_file,
                identity=identity,
                max_examples=args.max_examples,
                extra=args.extra,
            )
            print(f"fuzz: as {identity}: {' '.join(command)}", flush=True)  # noqa: T201
            status = subprocess.run(command, check=False).returncode
            if status != 0:
                return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
