"""The compose stack run for real: the README's walk-through through the nginx edge.

Images first (what they hold and who they run as), then a user registers, gets the welcome
mail in the catcher, logs in and places an order whose notification arrives; a consumer
container is stopped while a second order is placed and restarted, and nothing is lost.
"""

from __future__ import annotations

import json
import re
import subprocess
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import pytest
import requests
import yaml

from tests.compose.conftest import ROOT, SUITE_IMAGES, Stack, docker, suite_tag
from tests.support import wait_for

# The stack starts once for the module and the walk-through waits on real processes.
pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]

LIST_PACKAGES = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted(f\"{d.metadata['Name'].lower().replace('_', '-')}=={d.version}\" "
    "for d in m.distributions())))"
)
MAIL_DIR = "/var/mail-sink/mail"
VERIFICATION_SUBJECT = "Verify your email address"
WELCOME_SUBJECT = "Welcome to Flask Suite"
VERIFY_LINK = re.compile(r"https?://\S+/verify-email\?token=([\w\-]+)")
PASSWORD = "correct horse battery"
# Generous: argon2id at OWASP's parameters on a machine whose cores other work shares.
HTTP_TIMEOUT = 30


def locked_packages() -> set[str]:
    """name==version of every requirement the images were built from (build/image/)."""
    text = (ROOT / "build" / "image" / "requirements.txt").read_text()
    return {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() + "==" + line.split("==")[1].split()[0]
        for line in text.splitlines()
        if "==" in line
    }


def image_packages(image: str) -> set[str]:
    """name==version of every distribution installed in an image's Python."""
    output = docker("run", "--rm", "--entrypoint", "python", image, "-c", LIST_PACKAGES)
    return {
        re.sub(r"[-_.]+", "-", entry.split("==")[0]) + "==" + entry.split("==")[1]
        for entry in json.loads(output)
    }


@pytest.mark.parametrize("service", SUITE_IMAGES)
def test_an_image_holds_exactly_the_locked_packages_and_runs_as_non_root(service: str) -> None:
    image = f"flask-suite/{service}:{suite_tag()}"
    installed = image_packages(image)
    suite = {entry for entry in installed if entry.startswith("flask-microservices-suite==")}
    assert len(suite) == 1
    assert installed - suite == locked_packages()
    assert (
        docker("image", "inspect", "--format", "{{.Config.User}}", image).strip() == "10001:10001"
    )


def test_the_gateway_image_has_no_supervisor_mail_sink_or_test_tools() -> None:
    names = {entry.split("==")[0] for entry in image_packages(f"flask-suite/gateway:{suite_tag()}")}
    assert not names & {"honcho", "aiosmtpd", "pytest", "ruff", "mypy", "pip"}


def prometheus_api(stack: Stack, path: str, **params: str) -> Any:
    """The data of an answer of the observability profile's Prometheus."""
    port = stack.env["PROMETHEUS_PORT"]
    response = requests.get(f"http://127.0.0.1:{port}{path}", params=params, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return response.json()["data"]


def all_targets_up(stack: Stack) -> list[dict] | None:
    """Prometheus' targets once every one of them has been scraped successfully."""
    try:
        targets = prometheus_api(stack, "/api/v1/targets")["activeTargets"]
    except requests.RequestException:
        return None
    return targets if targets and all(t["health"] == "up" for t in targets) else None


def test_the_observability_profiles_prometheus_scrapes_every_process_and_loads_the_rules(
    stack: Stack,
) -> None:
    stack.compose("--profile", "observability", "up", "--detach", "--no-build", "prometheus")

    targets = wait_for(
        lambda: all_targets_up(stack), timeout=120, interval=2, what="every target scraped"
    )
    scraped = {t["labels"]["instance"].split(":")[0] for t in targets}
    built = {"auth", "orders", "notifications", "gateway"}
    assert built | {"orders-relay", "notifications-delivery", "rabbitmq"} <= scraped
    rules = [r for g in prometheus_api(stack, "/api/v1/rules")["groups"] for r in g["rules"]]
    rules_file = yaml.safe_load((ROOT / "deploy/monitoring/prometheus/rules.yml").read_text())
    assert len(rules) == sum(len(group["rules"]) for group in rules_file["groups"])
    assert all(rule["health"] == "ok" for rule in rules), rules
    # The series the alerts read exist under the names the rules use.
    for query in (
        'rabbitmq_queue_messages{queue="notifications.events.dlq"}',
        'rabbitmq_queue_messages_ready{queue="orders.events"}',
        "outbox_oldest_unsent_age_seconds",
        "events_published_total",
    ):
        result = prometheus_api(stack, "/api/v1/query", query=query)["result"]
        assert result, query


def mails_to(stack: Stack, address: str) -> list[EmailMessage]:
    """Every message the catcher holds for `address`, oldest first."""
    container = stack.container("mailpit")
    listing = docker("exec", container, "sh", "-c", f"ls {MAIL_DIR} 2>/dev/null || true").split()
    messages = []
    for name in sorted(listing):
        if name.endswith(".eml"):
            raw = subprocess.run(
                ["docker", "exec", container, "cat", f"{MAIL_DIR}/{name}"],
                capture_output=True,
                timeout=30,
                check=True,
            ).stdout
            message = message_from_bytes(raw, _class=EmailMessage, policy=email_policy.default)
            if message["To"] == address:
                messages.append(message)
    return messages


def subjects_of(stack: Stack, address: str) -> list[str]:
    """The subjects of the mails to `address`, oldest first."""
    return [message["Subject"] for message in mails_to(stack, address)]


def verification_token(stack: Stack, address: str) -> str | None:
    """The token of the link in the verification mail to `address`, once it is there."""
    for message in mails_to(stack, address):
        if message["Subject"] == VERIFICATION_SUBJECT:
            body = message.get_body(("plain",))
            found = VERIFY_LINK.search(body.get_content() if body is not None else "")
            if found:
                return found.group(1)
    return None


def order_notifications(stack: Stack, headers: dict[str, str]) -> list[dict]:
    """The user's notifications about their orders."""
    response = requests.get(f"{stack.api}/notifications", headers=headers, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return [item for item in response.json()["items"] if item["event_type"].startswith("order.")]


def place_order(stack: Stack, headers: dict[str, str], sku: str) -> str:
    """Place a one-line order of a catalogue product (priced by the catalogue); its id."""
    response = requests.post(
        f"{stack.api}/orders",
        json={"currency": "EUR", "items": [{"sku": sku, "quantity": 2}]},
        headers=headers,
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_the_readme_walk_through_runs_through_the_edge_and_a_restart_loses_nothing(
    stack: Stack,
) -> None:
    email = "ada@example.com"
    register = requests.post(
        f"{stack.api}/auth/register",
        json={"email": email, "password": PASSWORD, "name": "Ada"},
        timeout=HTTP_TIMEOUT,
    )
    assert register.status_code == 202, register.text
    assert register.headers["X-Request-ID"]

    # The link went auth -> outbox -> RabbitMQ -> notifications -> SMTP -> the catcher; it
    # points at the configured issuer, so its token goes to this stack's edge.
    token = wait_for(
        lambda: verification_token(stack, email), timeout=60, what="the verification mail"
    )
    verified = requests.post(
        f"{stack.api}/auth/verify-email", json={"token": token}, timeout=HTTP_TIMEOUT
    )
    assert verified.status_code == 200, verified.text
    # The welcome was held until the address was verified.
    wait_for(
        lambda: WELCOME_SUBJECT in subjects_of(stack, email), timeout=60, what="the welcome mail"
    )

    login = requests.post(
        f"{stack.api}/auth/login", json={"email": email, "password": PASSWORD}, timeout=HTTP_TIMEOUT
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = requests.get(f"{stack.api}/auth/me", headers=headers, timeout=HTTP_TIMEOUT)
    assert me.status_code == 200 and me.json()["email"] == email

    # The catalogue starts empty outside `make run`: the operator seeds the demo products.
    seeded = stack.compose(
        "exec", "-T", "orders", "flask", "--app", "services.orders", "seed-products"
    )
    assert "demo products added" in seeded
    first = place_order(stack, headers, "BOOK-1")
    wait_for(lambda: order_notifications(stack, headers), timeout=60, what="the order notification")

    # A consumer that is down while an order is placed gets the event once it is back.
    stack.compose("stop", "notifications-consumer", timeout=120)
    second = place_order(stack, headers, "PEN-7")
    assert len(order_notifications(stack, headers)) == 1
    stack.compose("start", "notifications-consumer", timeout=120)
    notes = wait_for(
        lambda: (
            len(order_notifications(stack, headers)) == 2 and order_notifications(stack, headers)
        ),
        timeout=90,
        what="the second order's notification after the restart",
    )
    assert len(notes) == 2

    # A restarted web container serves the same data: both orders, nothing twice. The edge
    # resolves its upstreams when it starts, and a restarted container may come back on
    # another address: the edge is restarted after it, as docs/operate.md says.
    stack.compose("restart", "orders", timeout=120)
    stack.compose("restart", "edge", timeout=120)

    def listed_orders() -> list[dict] | None:
        try:
            response = requests.get(f"{stack.api}/orders", headers=headers, timeout=HTTP_TIMEOUT)
        except requests.RequestException:
            return None  # the edge is still starting
        return response.json()["items"] if response.status_code == 200 else None

    orders = wait_for(
        listed_orders, timeout=90, interval=1, what="orders answering after its restart"
    )
    assert sorted(order["id"] for order in orders) == sorted([first, second])
    # One mail per event: the link, the welcome and one per order; none lost, none twice.
    wait_for(lambda: len(mails_to(stack, email)) >= 4, timeout=60, what="the order mails")
    assert subjects_of(stack, email)[:2] == [VERIFICATION_SUBJECT, WELCOME_SUBJECT]
    assert len(mails_to(stack, email)) == 4
