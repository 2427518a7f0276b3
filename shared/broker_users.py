"""Each process's RabbitMQ user and what it may do: the one definition of broker permissions.

    python -m shared.broker_users apply      # create/update the users through the management API
    python -m shared.broker_users commands   # print the same as rabbitmqctl commands

Compose and Kubernetes run `apply` once before the services start; the test harness
(tests/support) runs `rabbitmqctl_commands` for users of its own in its own vhost.

Who needs what follows from the code, not from a wish list (RabbitMQ's permission model:
configure = declare/delete, write = publish to an exchange or bind a queue, read = consume
a queue or bind from an exchange; a queue declared with a dead-letter exchange also needs
write on that exchange and read on the queue):

* every publisher (a relay) declares the `events` exchange before publishing, so publishing
  never 404s on a fresh broker, and publishes to it: configure + write on `events`, and a
  topic permission that lets it publish only its own routing keys (auth `user.*`, orders
  `order.*`). The broker closes the channel with ACCESS_REFUSED for any other key.
* every consumer declares its own queues (`<c>.events`, `<c>.events.retry.<n>`,
  `<c>.events.dlq`) and the two exchanges they hang off, binds them, consumes its main
  queue, and moves failed messages to its retry queues and DLQ through the default exchange;
  its retry queues dead-letter back through the default exchange and its main queue through
  `events.dlx`. Its topic read permission limits which routing keys it may bind its queue to.
* notifications and the gateway publish nothing to `events`.

What this cannot express: write on the default exchange (`amq.default`) lets a consumer
address any queue by name, and write on `events.dlx` any dead-letter queue; RabbitMQ checks
topic permissions on topic exchanges only. Closing that needs the retry path to leave the
default exchange (docs/operate.md, "Broker users").
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from shared.messaging import DEAD_LETTER_EXCHANGE, EXCHANGE

DEFAULT_EXCHANGE = "amq.default"  # the name RabbitMQ checks permissions on for ""
NOTHING = "^$"


@dataclass(frozen=True)
class BrokerUser:
    """One service's broker permissions in a vhost (regular expressions, as RabbitMQ takes them)."""

    service: str
    configure: str
    write: str
    read: str
    topic_write: str  # routing keys it may publish to `events`
    topic_read: str  # routing keys it may bind its queue to on `events`

    def password_variable(self) -> str:
        """The environment variable holding this user's password (compose, Kubernetes)."""
        return f"RABBITMQ_{self.service.upper()}_PASSWORD"


def _any_of(*names: str) -> str:
    return "^(" + "|".join(names) + ")$"


def _own_queues(consumer: str) -> str:
    # <c>.events, <c>.events.dlq and <c>.events.retry.<n> (shared.messaging's names).
    return re.escape(f"{consumer}.events") + r"(\..+)?"


def _publisher(service: str, routing_keys: str) -> BrokerUser:
    exchange = re.escape(EXCHANGE)
    return BrokerUser(
        service,
        configure=_any_of(exchange),
        write=_any_of(exchange),
        read=NOTHING,
        topic_write=routing_keys,
        topic_read=NOTHING,
    )


def _consumer(service: str, *, binds: str, publishes: str | None = None) -> BrokerUser:
    exchanges = [re.escape(EXCHANGE), re.escape(DEAD_LETTER_EXCHANGE)]
    queues = _own_queues(service)
    written = [re.escape(DEAD_LETTER_EXCHANGE), re.escape(DEFAULT_EXCHANGE), queues]
    if publishes is not None:
        written.insert(0, re.escape(EXCHANGE))
    return BrokerUser(
        service,
        configure=_any_of(*exchanges, queues),
        write=_any_of(*written),
        read=_any_of(*exchanges, queues),
        topic_write=publishes or NOTHING,
        topic_read=binds,
    )


USERS: tuple[BrokerUser, ...] = (
    _publisher("auth", r"^user\."),
    _consumer("orders", binds=r"^user\.", publishes=r"^order\."),
    _consumer("notifications", binds=r"^(user|order)\."),
    # The revocation consumer (gateway.worker): the events that change what a token may do,
    # not those carrying a user's email and name (user.registered, user.profile_changed).
    _consumer("gateway", binds=r"^user\.(deactivated|reactivated|role_changed)$"),
)


def user(service: str) -> BrokerUser:
    """The permissions of one service's user."""
    for candidate in USERS:
        if candidate.service == service:
            return candidate
    raise KeyError(service)


def rabbitmqctl_commands(
    vhost: str, passwords: Mapping[str, str], *, prefix: str = ""
) -> list[list[str]]:
    """rabbitmqctl argv lists that create (or reset) every user in `vhost`.

    `prefix` goes before each user name: users are global to the broker, so concurrent test
    sessions name theirs apart.
    """
    commands: list[list[str]] = []
    for entry in USERS:
        name = prefix + entry.service
        commands += [
            ["add_user", name, passwords[entry.service]],
            ["set_permissions", "-p", vhost, name, entry.configure, entry.write, entry.read],
            [
                "set_topic_permissions",
                *("-p", vhost, name, EXCHANGE),
                *(entry.topic_write, entry.topic_read),
            ],
        ]
    return commands


def management_requests(
    vhost: str, passwords: Mapping[str, str]
) -> list[tuple[str, dict[str, str]]]:
    """(path, JSON body) of the management API PUTs that create (or update) every user."""
    v = quote(vhost, safe="")
    calls: list[tuple[str, dict[str, str]]] = []
    for entry in USERS:
        name = quote(entry.service, safe="")
        calls += [
            (f"/api/users/{name}", {"password": passwords[entry.service], "tags": ""}),
            (
                f"/api/permissions/{v}/{name}",
                {"configure": entry.configure, "write": entry.write, "read": entry.read},
            ),
            (
                f"/api/topic-permissions/{v}/{name}",
                {"exchange": EXCHANGE, "write": entry.topic_write, "read": entry.topic_read},
            ),
        ]
    return calls


def passwords_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Every user's password from RABBITMQ_<SERVICE>_PASSWORD; SystemExit names any missing."""
    missing = [u.password_variable() for u in USERS if not environ.get(u.password_variable())]
    if missing:
        raise SystemExit(f"set {', '.join(missing)}")
    return {u.service: environ[u.password_variable()] for u in USERS}


def apply(api_url: str, admin: tuple[str, str], vhost: str, passwords: Mapping[str, str]) -> None:
    """Create or update every user through the management HTTP API (PUT is idempotent)."""
    import requests

    with requests.Session() as session:
        session.auth = admin
        for path, body in management_requests(vhost, passwords):
            response = session.put(api_url.rstrip("/") + path, json=body, timeout=10)
            if response.status_code not in (201, 204):
                raise SystemExit(f"PUT {path}: {response.status_code} {response.text[:200]}")


def wait_for_api(api_url: str, admin: tuple[str, str], timeout: float) -> None:
    """Poll the management API until it answers (it starts after the AMQP listener)."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(api_url.rstrip("/") + "/api/overview", auth=admin, timeout=5)
            if response.status_code == 401:
                raise SystemExit(f"{api_url}: the administrator's credentials were refused")
            if response.ok:
                return
            problem = f"{response.status_code} {response.reason}"
        except requests.ConnectionError as exc:
            problem = str(exc)
        if time.monotonic() > deadline:
            raise SystemExit(f"no RabbitMQ management API at {api_url}: {problem}")
        time.sleep(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (`apply` or `commands`)."""
    parser = argparse.ArgumentParser(prog="python -m shared.broker_users")
    parser.add_argument("command", choices=["apply", "commands"])
    parser.add_argument("--vhost", default=os.environ.get("RABBITMQ_VHOST", "/"))
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the API")
    args = parser.parse_args(argv)
    passwords = passwords_from_env(os.environ)
    if args.command == "commands":
        for command in rabbitmqctl_commands(args.vhost, passwords):
            sys.stdout.write(shlex.join(["rabbitmqctl", *command]) + "\n")
        return 0
    api_url = os.environ.get("RABBITMQ_API_URL", "http://127.0.0.1:15672")
    admin_user = os.environ.get("RABBITMQ_ADMIN_USER", "")
    admin_password = os.environ.get("RABBITMQ_ADMIN_PASSWORD", "")
    if not admin_user or not admin_password:
        raise SystemExit("set RABBITMQ_ADMIN_USER and RABBITMQ_ADMIN_PASSWORD")
    wait_for_api(api_url, (admin_user, admin_password), timeout=args.wait)
    apply(api_url, (admin_user, admin_password), args.vhost, passwords)
    sys.stdout.write(
        f"broker users ready in vhost {args.vhost}: {', '.join(u.service for u in USERS)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
