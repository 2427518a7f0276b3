"""Refusing a deactivated or demoted user's access tokens before they expire.

Auth publishes `user.deactivated` and `user.role_changed`; the gateway records "user U
changed at T" and from then on refuses every token of U issued at or before T. After a
deactivation no newer token can exist (auth refuses that user's logins and refreshes); if
an admin re-activates U, tokens issued after that are accepted again without any further
event. After a role change the client refreshes its token, and the new one carries the new
role. Auth gives iat to the microsecond, and reads the user under a share lock when it
issues a token, so a token issued before the change has an iat before the event's time.

Order: the store keeps the latest time it was given, so a late or redelivered older event
never shortens a newer revocation; a re-activation needs no entry at all.

Two stores:

* Redis (when `REDIS_URL` is set; compose, Kubernetes, tests): one key per user with a
  TTL longer than an access token lives. Every gunicorn worker on every host reads the
  same keys, per request (in the rate limits' round trip), so a revocation holds
  everywhere as soon as the single consumer process (`python -m gateway.worker`) wrote it.
  If Redis cannot answer, protected requests get 503: failing open would let a
  deactivated user back in for as long as the outage lasts.
* Memory (no Redis; `make run`): a dict per process, fed by a listener thread in each
  gunicorn worker on its own exclusive, auto-deleted queue (a broadcast: every worker
  sees every event). The price: a worker knows only the events published while it was
  connected. One started (or restarted, or reconnected) after a deactivation accepts that
  user's older tokens until they expire, at most 15 minutes. Good enough for one machine
  in development; use Redis anywhere it matters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import pika
import pika.exceptions

from shared import contracts
from shared.backoff import jittered_delay
from shared.errors import ServiceUnavailableError
from shared.events import Event, InvalidEvent, parse_event
from shared.messaging import EXCHANGE as EVENTS_EXCHANGE
from shared.messaging import connection_parameters, declare_exchange
from shared.tokens import Principal

log = logging.getLogger(__name__)

USER_DEACTIVATED = "user.deactivated"
USER_ROLE_CHANGED = "user.role_changed"
# The events after which a user's existing tokens must not be accepted any more.
REVOKING_EVENTS = (USER_DEACTIVATED, USER_ROLE_CHANGED)


class RevocationStore(Protocol):
    """Where the gateway remembers which users' tokens to refuse."""

    def revoke(self, user_id: str, at: float) -> None:
        """Refuse `user_id`'s tokens issued at or before `at` (epoch seconds)."""

    def revoked_at(self, user_id: str) -> float | None:
        """When `user_id` was last deactivated, if that still matters."""


def token_predates(principal: Principal, revoked_at: float | None) -> bool:
    """True when the principal's token was issued at or before its user's deactivation."""
    # A token with whole-second iat from the same second as the change is refused.
    return revoked_at is not None and principal.issued_at <= revoked_at


class MemoryRevocationStore:
    """Per-process store; entries expire once every token they could refuse has expired."""

    def __init__(self, ttl_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: dict[str, float] = {}
        self._lock = threading.Lock()

    def revoke(self, user_id: str, at: float) -> None:
        """Remember the latest deactivation time of `user_id`."""
        with self._lock:
            self._purge()
            self._entries[user_id] = max(at, self._entries.get(user_id, at))

    def revoked_at(self, user_id: str) -> float | None:
        """The deactivation time of `user_id`, unless it is older than any live token."""
        at = self._entries.get(user_id)
        if at is None or self._clock() - at > self.ttl_seconds:
            return None
        return at

    def _purge(self) -> None:
        cutoff = self._clock() - self.ttl_seconds
        for user_id in [u for u, at in self._entries.items() if at < cutoff]:
            del self._entries[user_id]


# Keep the later of two deactivations: a redelivered old event must not shorten a newer one.
_REVOKE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


class RedisRevocationStore:
    """Store shared by every worker and host: `<prefix>:revoked:<user_id>` = epoch seconds."""

    def __init__(self, client: Any, *, prefix: str, ttl_seconds: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self._script = client.register_script(_REVOKE_SCRIPT)

    def key(self, user_id: str) -> str:
        """The Redis key of one user's revocation."""
        return f"{self.prefix}:revoked:{user_id}"

    def revoke(self, user_id: str, at: float) -> None:
        """Record (or move forward) the deactivation time of `user_id`."""
        self._script(keys=[self.key(user_id)], args=[repr(at), self.ttl_seconds])

    def revoked_at(self, user_id: str) -> float | None:
        """The deactivation time of `user_id`, or None; 503 when Redis cannot say."""
        import redis

        try:
            raw = self.client.get(self.key(user_id))
        except redis.RedisError as exc:
            # Fail closed: accepting the token could let a deactivated user in.
            log.error("revocation lookup failed", extra={"error": str(exc)})
            raise ServiceUnavailableError(
                "Cannot check this token right now; try again shortly.",
                headers={"Retry-After": "1"},
            ) from None
        return float(raw) if raw is not None else None


def redis_client(url: str, timeout: float = 1.0) -> Any:
    """A pooled Redis client with short timeouts (it connects on first use, not here).

    The timeouts bound a Redis that stops answering (frozen, not down) as much as one that
    refuses: the gateway then answers 503 within `timeout` rather than waiting.
    """
    import redis

    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
    )


def user_deactivated_handler(store: RevocationStore) -> Callable[[Event], None]:
    """The event handler: record a deactivation or role change (what its contract refuses is
    dead-lettered)."""

    def handle(event: Event) -> None:
        if event.type not in REVOKING_EVENTS:
            return
        # InvalidEvent (bad data, or not from auth): retrying cannot fix it, the consumer
        # dead-letters it for inspection. Every revoking event names its user.
        data: contracts.UserDeactivatedV1 | contracts.UserRoleChangedV1 | None = (
            contracts.parse_for(event, contracts.GATEWAY)
        )
        if data is None:
            return  # another version of the type, which the gateway does not read
        store.revoke(data.user_id, event.time.timestamp())
        log.info("user tokens revoked", extra={"user_id": data.user_id, "event_id": event.id})

    return handle


class BroadcastListener:
    """Feeds one process's MemoryRevocationStore from its own exclusive queue (no Redis).

    Not shared.messaging.Consumer: that one shares a durable queue between the processes
    of a service (each event goes to ONE of them); here every process needs every event,
    and a queue per process must vanish with it.
    """

    def __init__(self, amqp_url: str, handler: Callable[[Event], None]) -> None:
        self.amqp_url = amqp_url
        self.handler = handler
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen in a daemon thread (it opens its own connection: pika is not thread-safe)."""
        self._thread = threading.Thread(target=self.run, name="revocation-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Consume until stop(), reconnecting with capped backoff."""
        failures = 0
        while not self._stop.is_set():
            try:
                self._consume()
                failures = 0
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.ready.clear()
                log.warning("revocation listener lost the broker", extra={"error": str(exc)})
                failures += 1
                # Jittered: every gateway process reconnects after the same outage.
                self._stop.wait(jittered_delay(failures, base=0.5, cap=15.0))

    def _consume(self) -> None:
        params = connection_parameters(self.amqp_url, connection_name="gateway-revocations")
        connection = pika.BlockingConnection(params)
        try:
            channel = connection.channel()
            declare_exchange(channel)
            declared = channel.queue_declare(queue="", exclusive=True, auto_delete=True)
            queue = declared.method.queue
            for routing_key in REVOKING_EVENTS:
                channel.queue_bind(queue=queue, exchange=EVENTS_EXCHANGE, routing_key=routing_key)
            channel.basic_consume(queue, self._on_message, auto_ack=True)
            self.ready.set()
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.25)
        finally:
            self.ready.clear()
            if connection.is_open:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    pass

    def _on_message(self, _channel: Any, _method: Any, _properties: Any, body: bytes) -> None:
        try:
            self.handler(parse_event(body))
        except InvalidEvent as exc:
            log.warning("malformed event ignored", extra={"error": str(exc)})
