"""Per-IP and per-user rate limits, and the revocation lookup, in one Redis round trip.

Two application-wide limits apply to every proxied request and to /_auth/verify:

* per client IP (`GATEWAY_RATE_LIMIT_IP`), counted whether or not the token is good, so a
  flood of forged tokens is throttled like any other flood;
* per user (`GATEWAY_RATE_LIMIT_USER`), keyed by the verified token's `sub`.

Both are sliding-window counters: a window's count plus the previous window's, weighted
by how much of it still overlaps the last `window` seconds. No burst of twice the limit
at a window edge, and two numbers per key instead of a list of every request. A request
is counted only when every limit has room for it.

A 304 Not Modified is given back: its count is taken off again after the answer (only
within the window that counted it), so a client polling with If-None-Match for something
that has not changed spends nothing of its budget, and `RateLimit-Remaining` stays as it
was. The edge's nginx still holds such polls to the configured rate as a flood guard.

Headers follow the IETF RateLimit fields draft, for the limit closest to refusing:
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds from now). A
refusal is a 429 problem+json whose `Retry-After` is the time until the request would fit.

Written by hand rather than with flask-limiter (which this module used before): that asks
its storage once per limit and once more for the headers, and the revocation lookup is
one more; together they were three to four Redis round trips and a quarter of the
gateway's CPU per request. Here one Lua script checks and counts both limits and reads
the user's revocation entry: one round trip, atomic, so the limits hold across every
worker and host. `limits` (flask-limiter's engine) still parses the settings.

With `REDIS_URL` unset the counters live in each process's memory (so `-w 4` allows
four times the limit). If Redis fails, limits fall back to memory instead of failing
the request; a protected request, whose revocation cannot be checked then, gets 503.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from flask import Flask, Response, current_app, g, request
from limits import parse_many

from gateway.revocation import RedisRevocationStore, RevocationStore
from gateway.security import check_revocation, resolve_principal
from shared.config import ConfigError
from shared.errors import ServiceUnavailableError, TooManyRequestsError

log = logging.getLogger(__name__)

LIMITED_ENDPOINTS = frozenset({"proxy", "verify"})


@dataclass(frozen=True)
class Limit:
    """At most `amount` requests in any `window_ms` milliseconds, per key of `scope`."""

    scope: str
    amount: int
    window_ms: int
    text: str

    def key(self, prefix: str, who: str) -> str:
        """The counter's key for one caller."""
        return f"{prefix}:ratelimit:{self.scope}:{self.amount}/{self.window_ms}:{who}"


class Counts(NamedTuple):
    """A key's requests in the current window and in the one before it."""

    current: int
    previous: int


class Outcome(NamedTuple):
    """What the store answered: whether the request was counted, the counts, revocation."""

    allowed: bool
    now_ms: int
    counts: list[Counts]
    revoked_at: float | None
    from_fallback: bool = False  # counted in this process's memory while Redis was down


def _windows_of(checks: Sequence[tuple[str, Limit]], now_ms: int) -> list[int]:
    """The window number each limit counted a request made at `now_ms` in."""
    return [now_ms // limit.window_ms for _, limit in checks]


@dataclass(frozen=True)
class Decision:
    """One limit's state after a request, as the headers report it."""

    limit: Limit
    remaining: int
    reset: int
    retry_after: int


def parse_limits(scope: str, text: str) -> list[Limit]:
    """`600/minute;10/second` -> Limits; ConfigError for a string `limits` cannot parse."""
    try:
        items = parse_many(text)
    except ValueError as exc:
        raise ConfigError(f"rate limit {text!r}: {exc}") from None
    limits = [Limit(scope, item.amount, item.get_expiry() * 1000, str(item)) for item in items]
    if not limits or any(limit.amount < 1 for limit in limits):
        raise ConfigError(f"rate limit {text!r} must allow at least one request")
    return limits


def _weighted(limit: Limit, now_ms: int, counts: Counts) -> float:
    elapsed = now_ms % limit.window_ms
    overlap = (limit.window_ms - elapsed) / limit.window_ms
    return counts.previous * overlap + counts.current


def seconds_until_room(limit: Limit, now_ms: int, counts: Counts) -> float:
    """How long until one more request fits under `limit`, if no other comes first."""
    window = limit.window_ms
    elapsed = now_ms % window
    room = limit.amount - 1  # the weighted count must fall to this
    if _weighted(limit, now_ms, counts) <= room:
        return 0.0
    if counts.current <= room:
        # The previous window's share fades out before this window ends.
        fade = window * (1 - elapsed / window - (room - counts.current) / counts.previous)
        return max(0.0, fade) / 1000
    # This window alone is over: wait for it to end and then fade as the previous one.
    return (window - elapsed + window * (1 - room / counts.current)) / 1000


def decide(limit: Limit, now_ms: int, counts: Counts) -> Decision:
    """Remaining requests, reset and retry times of `limit` given its counts."""
    remaining = max(0, math.floor(limit.amount - _weighted(limit, now_ms, counts) + 1e-9))
    retry_after = math.ceil(seconds_until_room(limit, now_ms, counts))
    # Exhausted: "reset" is when the next request fits; otherwise the end of this window.
    window_left = math.ceil((limit.window_ms - now_ms % limit.window_ms) / 1000)
    reset = retry_after if remaining == 0 else window_left
    return Decision(limit, remaining, reset, retry_after)


class LimitStore(Protocol):
    """Checks and counts a request against several limits at once."""

    def hit(self, checks: Sequence[tuple[str, Limit]], revocation_key: str | None) -> Outcome:
        """Count the request under every key if all have room; read `revocation_key` too."""

    def refund(self, checks: Sequence[tuple[str, Limit]], now_ms: int) -> None:
        """Take back a request `hit` counted at `now_ms`, where its window is still current."""


class MemoryLimitStore:
    """This process's counters (no Redis, or while Redis is down)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[str, tuple[int, int, int]] = {}  # key -> (window, current, prev)
        self._lock = threading.Lock()

    def hit(self, checks: Sequence[tuple[str, Limit]], revocation_key: str | None) -> Outcome:
        """Count the request if every limit has room (revocations are not kept here)."""
        now_ms = int(self._clock() * 1000)
        with self._lock:
            states = [self._state(key, limit, now_ms) for key, limit in checks]
            counts = [Counts(current, previous) for _, current, previous in states]
            allowed = all(
                _weighted(limit, now_ms, c) + 1 <= limit.amount
                for (_, limit), c in zip(checks, counts, strict=True)
            )
            if allowed:
                for (key, _), (window, current, previous) in zip(checks, states, strict=True):
                    self._windows[key] = (window, current + 1, previous)
                counts = [Counts(c.current + 1, c.previous) for c in counts]
            if len(self._windows) > self._max_keys:
                self._forget_idle(now_ms, checks)
        return Outcome(allowed, now_ms, counts, None)

    def refund(self, checks: Sequence[tuple[str, Limit]], now_ms: int) -> None:
        """Take one off each counter still in the window that counted the request."""
        with self._lock:
            for (key, _), window in zip(checks, _windows_of(checks, now_ms), strict=True):
                stored = self._windows.get(key)
                if stored is not None and stored[0] == window and stored[1] > 0:
                    self._windows[key] = (window, stored[1] - 1, stored[2])

    def _state(self, key: str, limit: Limit, now_ms: int) -> tuple[int, int, int]:
        window = now_ms // limit.window_ms
        stored, current, previous = self._windows.get(key, (window, 0, 0))
        if stored == window:
            return window, current, previous
        if stored == window - 1:
            return window, 0, current
        return window, 0, 0

    def _forget_idle(self, now_ms: int, checks: Sequence[tuple[str, Limit]]) -> None:
        # Keys untouched for two windows of the longest limit count nothing any more.
        longest = max(limit.window_ms for _, limit in checks)
        oldest = now_ms // longest - 2
        for key in [k for k, (window, _, _) in self._windows.items() if window < oldest]:
            del self._windows[key]
        if len(self._windows) > self._max_keys:
            # All of them busy: start afresh rather than scan them again on every request.
            self._windows.clear()


# KEYS: one hash per limit (fields w: window number, c: its count, p: the previous
# window's count), then optionally the user's revocation key. ARGV: the number of limits,
# then amount and window (ms) of each. Redis' clock, so every worker and host agrees.
# Returns {allowed, now_ms, c1, p1, c2, p2, ..., revoked_at or false}.
_HIT_SCRIPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local n = tonumber(ARGV[1])
local states = {}
local allowed = 1
for i = 1, n do
  local amount = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  local w = math.floor(now / window)
  local stored = redis.call('HMGET', KEYS[i], 'w', 'c', 'p')
  local sw, c, p = tonumber(stored[1]), tonumber(stored[2]) or 0, tonumber(stored[3]) or 0
  if sw == w - 1 then
    p, c = c, 0
  elseif sw ~= w then
    p, c = 0, 0
  end
  local weighted = p * (window - (now - w * window)) / window + c
  if weighted + 1 > amount then
    allowed = 0
  end
  states[i] = {w, c, p, window}
end
local out = {allowed, now}
for i = 1, n do
  local s = states[i]
  if allowed == 1 then
    s[2] = s[2] + 1
    redis.call('HSET', KEYS[i], 'w', s[1], 'c', s[2], 'p', s[3])
    redis.call('PEXPIRE', KEYS[i], 2 * s[4])
  end
  out[#out + 1] = s[2]
  out[#out + 1] = s[3]
end
if #KEYS > n then
  out[#out + 1] = redis.call('GET', KEYS[n + 1])
end
return out
"""


# KEYS: the limits' hashes; ARGV: the window number each counted the request in. Only a
# counter still in that window is decremented (a later window's count is not this one's).
_REFUND_SCRIPT = """
for i = 1, #KEYS do
  local stored = redis.call('HMGET', KEYS[i], 'w', 'c')
  local c = tonumber(stored[2]) or 0
  if tonumber(stored[1]) == tonumber(ARGV[i]) and c > 0 then
    redis.call('HSET', KEYS[i], 'c', c - 1)
  end
end
return #KEYS
"""


class RedisLimitStore:
    """Counters every worker and host shares; the revocation lookup rides along."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._script = client.register_script(_HIT_SCRIPT)
        self._refund_script = client.register_script(_REFUND_SCRIPT)

    def hit(self, checks: Sequence[tuple[str, Limit]], revocation_key: str | None) -> Outcome:
        """One EVALSHA; redis.RedisError propagates."""
        keys = [key for key, _ in checks]
        args: list[int] = [len(checks)]
        for _, limit in checks:
            args += [limit.amount, limit.window_ms]
        if revocation_key is not None:
            keys.append(revocation_key)
        reply = self._script(keys=keys, args=args)
        numbers = reply[2 : 2 + 2 * len(checks)]
        counts = [Counts(int(numbers[i]), int(numbers[i + 1])) for i in range(0, len(numbers), 2)]
        revoked = reply[2 + 2 * len(checks)] if len(reply) > 2 + 2 * len(checks) else None
        return Outcome(bool(reply[0]), int(reply[1]), counts, float(revoked) if revoked else None)

    def refund(self, checks: Sequence[tuple[str, Limit]], now_ms: int) -> None:
        """One EVALSHA; redis.RedisError propagates."""
        self._refund_script(keys=[key for key, _ in checks], args=_windows_of(checks, now_ms))


class Limiter:
    """The configured limits over a store, with a memory fallback while Redis is down."""

    def __init__(
        self, store: LimitStore, *, ip: list[Limit], user: list[Limit], prefix: str
    ) -> None:
        self.store = store
        self.fallback = MemoryLimitStore()
        self.ip_limits = ip
        self.user_limits = user
        self.prefix = prefix
        self._warned_at = float("-inf")

    def hit(self, checks: Sequence[tuple[str, Limit]], revocation_key: str | None) -> Outcome:
        """Ask the store; on a Redis error, memory for the limits (the revocation lookup
        cannot fall back: the caller gets 503 for it)."""
        import redis

        try:
            return self.store.hit(checks, revocation_key)
        except redis.RedisError as exc:
            if revocation_key is not None:
                # Fail closed: accepting the token could let a deactivated user in.
                log.error("revocation lookup failed", extra={"error": str(exc)})
                raise ServiceUnavailableError(
                    "Cannot check this token right now; try again shortly.",
                    headers={"Retry-After": "1"},
                ) from None
            if time.monotonic() - self._warned_at > 10:
                self._warned_at = time.monotonic()
                log.warning("rate limits fall back to memory", extra={"error": str(exc)})
            return self.fallback.hit(checks, None)._replace(from_fallback=True)

    def refund(self, checks: Sequence[tuple[str, Limit]], outcome: Outcome) -> None:
        """Take back a counted request in the store that counted it; lost if Redis fails."""
        import redis

        if not outcome.allowed:
            return
        if outcome.from_fallback:
            self.fallback.refund(checks, outcome.now_ms)
            return
        try:
            self.store.refund(checks, outcome.now_ms)
        except redis.RedisError as exc:
            # The request stays counted: a client loses one request of its budget, no more.
            log.warning("rate limit refund failed", extra={"error": str(exc)})


def client_ip() -> str:
    """The caller's address (the real client's once TRUSTED_PROXY_HOPS trusts our edge)."""
    return request.remote_addr or "unknown"


def admit() -> None:
    """before_request: count the request against its limits (429 beyond them) and, for a
    verified caller, check the token's revocation in the same round trip."""
    if request.endpoint not in LIMITED_ENDPOINTS:
        # Probes, metrics and docs must keep answering while a client is being throttled.
        return
    limiter: Limiter = current_app.extensions["gateway_limiter"]
    principal = resolve_principal()
    checks = [(limit.key(limiter.prefix, client_ip()), limit) for limit in limiter.ip_limits]
    revocation_key = None
    store: RevocationStore = current_app.extensions["revocations"]
    if principal is not None:
        checks += [(lim.key(limiter.prefix, principal.user_id), lim) for lim in limiter.user_limits]
        if (
            isinstance(store, RedisRevocationStore)
            and isinstance(limiter.store, RedisLimitStore)
            and store.client is limiter.store.client
        ):
            # The revocation entry lives on the same Redis: it shares the round trip.
            revocation_key = store.key(principal.user_id)
    outcome = limiter.hit(checks, revocation_key)
    decisions = [
        decide(limit, outcome.now_ms, counts)
        for (_, limit), counts in zip(checks, outcome.counts, strict=True)
    ]
    if not outcome.allowed:
        refused = max(decisions, key=lambda d: d.retry_after)
        g.rate_limit = refused
        scope = "per client address" if refused.limit.scope == "ip" else "per user"
        raise TooManyRequestsError(
            f"Rate limit exceeded ({refused.limit.text} {scope}); "
            f"retry after {max(1, refused.retry_after)} s.",
            retry_after=refused.retry_after,
        )
    g.rate_limit = min(decisions, key=lambda d: (d.remaining, -d.reset))
    g.rate_limit_counted = (checks, outcome)
    if principal is not None:
        if revocation_key is not None:
            check_revocation(outcome.revoked_at)
        else:
            check_revocation(store.revoked_at(principal.user_id))


def refund_not_modified(response: Response) -> None:
    """A 304 costs nothing: its count is given back, and the headers show the budget as
    it was before the request."""
    counted: tuple[list[tuple[str, Limit]], Outcome] | None = g.get("rate_limit_counted")
    if response.status_code != 304 or counted is None:
        return
    checks, outcome = counted
    limiter: Limiter = current_app.extensions["gateway_limiter"]
    limiter.refund(checks, outcome)
    before = [Counts(max(0, c.current - 1), c.previous) for c in outcome.counts]
    decisions = [
        decide(limit, outcome.now_ms, counts)
        for (_, limit), counts in zip(checks, before, strict=True)
    ]
    g.rate_limit = min(decisions, key=lambda d: (d.remaining, -d.reset))


def add_headers(response: Response) -> Response:
    """after_request: the RateLimit fields of the limit closest to refusing."""
    refund_not_modified(response)
    decision: Decision | None = g.get("rate_limit")
    if decision is not None:
        response.headers["RateLimit-Limit"] = str(decision.limit.amount)
        response.headers["RateLimit-Remaining"] = str(decision.remaining)
        response.headers["RateLimit-Reset"] = str(decision.reset)
    return response


def init_app(app: Flask, store: LimitStore) -> Limiter:
    """Apply the limits of the config to every proxied request and /_auth/verify."""
    limiter = Limiter(
        store,
        ip=parse_limits("ip", app.config["GATEWAY_RATE_LIMIT_IP"]),
        user=parse_limits("user", app.config["GATEWAY_RATE_LIMIT_USER"]),
        prefix=app.config["GATEWAY_REDIS_PREFIX"],
    )
    app.extensions["gateway_limiter"] = limiter
    app.before_request(admit)
    app.after_request(add_headers)
    return limiter
