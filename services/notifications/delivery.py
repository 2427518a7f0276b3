"""Sending: signed webhooks over HTTP, and the loop that drives every delivery.

Mail (its MIME form and the SMTP client) is in `mail`.

The loop never holds a transaction across the network: it claims due deliveries (one
attempt each, a lease keeps other workers off them) and commits; before each send it
renews the lease and checks that nobody claimed the delivery since (so one claim sends
at most once, however long the batch takes); it sends under a deadline shorter than the
lease, then records the result in a transaction of its own. A crash after a send but
before its record sends that message again once the lease runs out; the email's
Message-ID and the webhook's `webhook-id` are the delivery id, so a receiver can tell
it is the same one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests
from prometheus_client import Counter
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from services.notifications import deliveries, webhooks
from services.notifications.deadline import Deadline
from services.notifications.deliveries import DeliveryError, DeliveryJob, RetryPolicy
from services.notifications.mail import EmailSender
from services.notifications.models import Channel
from services.notifications.ssrf import GuardedAdapter, TargetGuard, UnsafeTargetError
from services.notifications.webhooks import REFUSED_TARGET, SECRET_PREFIX
from shared.backoff import jittered_delay
from shared.context import child_traceparent, correlation
from shared.db import utcnow
from shared.faults import DELIVERY_AFTER_SEND, crash_point
from shared.uow import unit_of_work

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = Counter(
    "notification_delivery_attempts",
    "Delivery attempts by channel and outcome.",
    ["channel", "outcome"],
)
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "flask-suite-webhooks/1.0"


# -- webhooks ---------------------------------------------------------------------------


def webhook_signatures(*, secrets: Sequence[str], msg_id: str, timestamp: int, body: str) -> str:
    """`webhook-signature` with one signature per secret, space-separated (Standard Webhooks).

    During a rotation's grace period a receiver holding either secret finds its own.
    """
    return " ".join(
        sign_webhook(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
        for secret in secrets
    )


def sign_webhook(*, secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`webhook-signature` per Standard Webhooks: v1,base64(HMAC-SHA256(key, id.ts.body))."""
    # Signed here in a few lines rather than with the `standardwebhooks` package, which the
    # tests use instead, as an independent implementation that must accept our signatures.
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookSender:
    """POSTs signed webhooks: no redirects, bounded time and response size, SSRF-guarded."""

    def __init__(
        self,
        *,
        guard: TargetGuard,
        timeout: float = 5.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.guard = guard
        # The whole delivery's limit: DNS, connect, TLS, sending, status line and headers.
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.clock = clock

    def send(
        self,
        *,
        delivery_id: str,
        url: str,
        secret: str,
        body: str,
        previous_secret: str | None = None,
    ) -> int:
        """POST one webhook; its 2xx status, or DeliveryError (refused, timeout, non-2xx).

        `previous_secret` (a rotation's grace period) signs as well.
        """
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": webhook_signatures(
                secrets=[secret] if previous_secret is None else [secret, previous_secret],
                msg_id=delivery_id,
                timestamp=timestamp,
                body=body,
            ),
        }
        with Deadline(self.timeout) as deadline:
            try:
                status = self._post(url, body.encode(), headers, deadline)
            except DeliveryError as exc:
                if deadline.expired:
                    raise DeliveryError(self._too_slow()) from exc
                raise
            if deadline.expired:
                # The watchdog cut the connection: what looked like an answer may be a
                # truncated one (an end of file also ends the headers).
                raise DeliveryError(self._too_slow())
        return status

    def _too_slow(self) -> str:
        return f"webhook gave no complete answer within {self.timeout:g} s; abandoned"

    def _post(self, url: str, data: bytes, headers: dict[str, str], deadline: Deadline) -> int:
        # A session per delivery: every socket of this POST is then one opened under this
        # deadline (a pooled keep-alive connection would not be watched), and nothing is
        # shared between delivery threads.
        with requests.Session() as session:
            # No proxy from the environment: the guard must see the address really connected to.
            session.trust_env = False
            adapter = GuardedAdapter(self.guard, deadline=deadline)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                self.guard.split_url(url)  # the scheme rule; the address rule runs at connect
                response = session.post(
                    url,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except UnsafeTargetError as exc:
                # The reason names hosts and addresses, and last_error is shown to the
                # endpoint's owner: the detail goes to our log only.
                log.warning("webhook target refused at delivery", extra={"reason": str(exc)})
                raise DeliveryError(f"refused: {REFUSED_TARGET}") from exc
            except requests.RequestException as exc:
                raise DeliveryError(f"webhook request failed: {type(exc).__name__}: {exc}") from exc
            try:
                return self._check_answer(response)
            finally:
                response.close()

    def _check_answer(self, response: requests.Response) -> int:
        status = response.status_code
        try:
            if 200 <= status < 300:
                return status
            if 300 <= status < 400:
                location = response.headers.get("Location", "")[:200]
                raise DeliveryError(
                    f"HTTP {status} redirect to {location!r} (not followed)", status_code=status
                )
            # Only a bounded prefix of the body is read: the target cannot make us buffer more.
            snippet = response.raw.read(self.max_response_bytes, decode_content=False)
            text = snippet[:200].decode("utf-8", "replace")
            raise DeliveryError(f"HTTP {status}: {text}", status_code=status)
        except (Urllib3HTTPError, OSError) as exc:
            raise DeliveryError(f"reading the response failed: {exc}", status_code=status) from exc


# -- the delivery loop ------------------------------------------------------------------


class EmailSending(Protocol):
    """What the loop needs to send an email (EmailSender, or a fake)."""

    def send(self, *, delivery_id: str, to: str, subject: str, text: str, html: str) -> None: ...


class WebhookSending(Protocol):
    """What the loop needs to send a webhook (WebhookSender, or a fake).

    `previous_secret` is passed only during a rotation's grace period; the answer is the
    receiver's status, when known (the attempt log shows it).
    """

    def send(self, *, delivery_id: str, url: str, secret: str, body: str) -> int | None: ...


@dataclass
class DeliverySettings:
    """The delivery loop's dependencies and knobs, built from config by `delivery_settings`."""

    email: EmailSending
    webhook: WebhookSending
    policy: RetryPolicy
    batch_size: int = 10
    lease_seconds: float = 120.0
    poll_seconds: float = 1.0
    # An endpoint whose every attempt failed for this long is disabled (webhooks).
    webhook_disable_after: timedelta = timedelta(days=5)


def delivery_settings(config: Any) -> DeliverySettings:
    """DeliverySettings from a Flask config."""
    return DeliverySettings(
        email=EmailSender(
            host=config["SMTP_HOST"],
            port=int(config["SMTP_PORT"]),
            sender=config["SMTP_FROM"],
            timeout=float(config["SMTP_TIMEOUT_SECONDS"]),
            username=config.get("SMTP_USERNAME"),
            password=config.get("SMTP_PASSWORD"),
            starttls=bool(config.get("SMTP_STARTTLS")),
        ),
        webhook=WebhookSender(
            guard=TargetGuard(allow_private=bool(config["NOTIFICATIONS_WEBHOOK_ALLOW_PRIVATE"])),
            timeout=float(config["NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS"]),
        ),
        policy=RetryPolicy(
            max_attempts=int(config["NOTIFICATIONS_MAX_ATTEMPTS"]),
            base_seconds=float(config["NOTIFICATIONS_BACKOFF_BASE_SECONDS"]),
            cap_seconds=float(config["NOTIFICATIONS_BACKOFF_CAP_SECONDS"]),
        ),
        batch_size=int(config["NOTIFICATIONS_DELIVERY_BATCH_SIZE"]),
        lease_seconds=float(config["NOTIFICATIONS_DELIVERY_LEASE_SECONDS"]),
        poll_seconds=float(config["NOTIFICATIONS_DELIVERY_POLL_SECONDS"]),
        webhook_disable_after=timedelta(
            seconds=float(config["NOTIFICATIONS_WEBHOOK_DISABLE_AFTER_SECONDS"])
        ),
    )


def send_job(job: DeliveryJob, settings: DeliverySettings) -> int | None:
    """Send one claimed delivery on its channel; DeliveryError when it did not go through.

    The answer is a webhook receiver's HTTP status (None for mail).
    """
    payload = job.payload
    if job.channel == Channel.EMAIL:
        if not job.email:
            raise DeliveryError("no email address is known for this user yet")
        settings.email.send(
            delivery_id=str(job.id),
            to=job.email,
            subject=payload["subject"],
            text=payload["text"],
            html=payload["html"],
        )
    elif job.channel == Channel.WEBHOOK:
        assert job.url is not None and job.secret is not None  # claim cancels orphans
        # The previous secret only while it signs: fakes and older senders take four names.
        extra = {} if job.previous_secret is None else {"previous_secret": job.previous_secret}
        status = settings.webhook.send(
            delivery_id=str(job.id), url=job.url, secret=job.secret, body=payload["body"], **extra
        )
        return status if isinstance(status, int) else None
    else:
        raise DeliveryError(f"unknown channel {job.channel!r}")
    return None


def deliver_due_once(
    session: Session, settings: DeliverySettings, *, now: Callable[[], datetime] = utcnow
) -> int:
    """Claim due deliveries, send them, record each outcome; the number claimed."""
    # Each step is its own committed transaction: none stays open while a message is on
    # the network, and the claim is visible to the other workers before anything is sent.
    with unit_of_work(session):
        jobs = deliveries.claim_due_deliveries(
            session=session,
            now=now(),
            limit=settings.batch_size,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.policy.max_attempts,
        )
    for job in jobs:
        # The log lines of this send carry the request and trace of the event behind it
        # (a span of its own within that trace).
        traceparent = child_traceparent(job.traceparent) if job.traceparent else None
        with correlation(job.request_id, traceparent):
            _deliver_one(session, job, settings, now)
    if len(jobs) < settings.batch_size:
        # Less than a full batch: nothing more is due now, the loop goes idle.
        _release_connections(settings)
    return len(jobs)


def _deliver_one(
    session: Session, job: DeliveryJob, settings: DeliverySettings, now: Callable[[], datetime]
) -> None:
    extra = {"delivery_id": str(job.id), "channel": job.channel, "attempt": job.attempt}
    # The batch was claimed at once, and the sends before this one took time: another
    # worker may have claimed it meanwhile, or the user or endpoint may be gone.
    with unit_of_work(session):
        ours = deliveries.renew_claim(
            session=session, job=job, now=now(), lease_seconds=settings.lease_seconds
        )
    if not ours:
        DELIVERY_ATTEMPTS.labels(job.channel, "skipped").inc()
        return
    started = time.monotonic()
    status_code: int | None = None
    try:
        status_code = send_job(job, settings)
    except DeliveryError as exc:
        error = str(exc)
        status_code = exc.status_code
    except Exception as exc:
        # A bug with one message must not stop the others; it is retried and recorded.
        log.exception("unexpected error while sending", extra=extra)
        error = f"unexpected error: {type(exc).__name__}: {exc}"
    else:
        # Sent, not yet recorded: a crash here sends again once the lease runs out, under
        # the same delivery id, which receivers dedupe by.
        crash_point(DELIVERY_AFTER_SEND)
        with unit_of_work(session):
            moment = now()
            deliveries.record_delivery_sent(session=session, job=job, now=moment)
            _log_webhook_attempt(session, job, settings, moment, started, status_code, None)
        DELIVERY_ATTEMPTS.labels(job.channel, "sent").inc()
        log.info("delivery sent", extra=extra)
        return
    with unit_of_work(session):
        moment = now()
        status = deliveries.record_delivery_failed(
            session=session, job=job, error=error, now=moment, policy=settings.policy
        )
        _log_webhook_attempt(session, job, settings, moment, started, status_code, error)
    DELIVERY_ATTEMPTS.labels(job.channel, "failed" if status == "failed" else "retry").inc()
    log.warning("delivery attempt failed", extra={**extra, "error": error, "status": status})


def _log_webhook_attempt(
    session: Session,
    job: DeliveryJob,
    settings: DeliverySettings,
    now: datetime,
    started: float,
    status_code: int | None,
    error: str | None,
) -> None:
    """The endpoint's attempt log and failing period, in the transaction of the record."""
    if job.channel != Channel.WEBHOOK or job.endpoint_id is None:
        return
    webhooks.record_webhook_attempt(
        session=session,
        result=webhooks.AttemptResult(
            delivery_id=job.id,
            endpoint_id=job.endpoint_id,
            event_type=job.event_type or "",
            attempt=job.attempt,
            succeeded=error is None,
            status_code=status_code,
            duration_ms=round((time.monotonic() - started) * 1000),
            error=error,
        ),
        now=now,
        disable_after=settings.webhook_disable_after,
    )


def run_delivery_loop(
    session_factory: Callable[..., Session],
    settings: DeliverySettings,
    stop_event: threading.Event,
    *,
    max_db_backoff: float = 30.0,
) -> None:
    """Deliver until `stop_event` is set; idle `poll_seconds` when nothing is due."""
    try:
        _run_delivery_loop(session_factory, settings, stop_event, max_db_backoff)
    finally:
        _release_connections(settings)


def _release_connections(settings: DeliverySettings) -> None:
    # This thread's SMTP connection (EmailSender keeps one per loop) is not held open
    # while there is nothing to send.
    close = getattr(settings.email, "close", None)
    if close is not None:
        close()


def _run_delivery_loop(
    session_factory: Callable[..., Session],
    settings: DeliverySettings,
    stop_event: threading.Event,
    max_db_backoff: float,
) -> None:
    failures = 0
    while not stop_event.is_set():
        session = session_factory()
        connection: Connection | None = None
        try:
            # One pooled connection for the whole pass (its transactions stay as they
            # were, each committed on its own): a checkout, with its ping, per pass rather
            # than one per transaction, three of which each mail takes.
            bind = session.get_bind()
            if isinstance(bind, Engine):
                connection = bind.connect()
                session.close()
                session = session_factory(bind=connection)
            claimed = deliver_due_once(session, settings)
            failures = 0
        except SQLAlchemyError as exc:
            # The database went away: back off and try again, the rows are still there.
            with contextlib.suppress(SQLAlchemyError):
                session.rollback()
            failures += 1
            delay = jittered_delay(failures, base=2 * settings.poll_seconds, cap=max_db_backoff)
            log.warning(
                "delivery loop: database error", extra={"error": str(exc), "retry_in": delay}
            )
            stop_event.wait(delay)
            continue
        finally:
            session.close()
            if connection is not None:
                with contextlib.suppress(SQLAlchemyError):
                    connection.close()
        if claimed < settings.batch_size:
            stop_event.wait(settings.poll_seconds)
