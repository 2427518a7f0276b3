"""The verdict, in Jepsen's terms: what was acknowledged, what happened, what went wrong.

Pure functions over what the harness observed (no I/O), so they are tested on their own:

* every accepted order (201) must have exactly one notification, one mail and one webhook
  delivery per endpoint its user subscribed: `lost` (none) and `duplicated` (two distinct
  deliveries, i.e. two effects) must both be 0;
* a delivery received twice under the same id (`webhook-id`, the mail's Message-ID) is a
  redelivery, which at-least-once allows after a crash between sending and recording; a
  receiver de-duplicates it by that id, so it is counted and shown, not failed;
* every HTTP answer other than 201 is counted and classified; only a 503 (the documented
  answer while a dependency is out) during a fault that takes out a dependency of the
  request is allowed, and a connection reset by a gateway that was killed (the client
  retries it with its Idempotency-Key);
* recovery: from the end of a fault until the backlog is back at its level before the fault.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

ALLOWED_STATUSES = frozenset({201, 503})


@dataclass
class Tally:
    """One kind of effect (notifications, mails, webhooks) against what was expected."""

    expected: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    redelivered: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)


def tally(
    expected: Iterable[str], effects: Iterable[tuple[str, str]], *, ignore: Iterable[str] = ()
) -> Tally:
    """Compare the keys that must each have exactly one effect with the effects seen.

    `effects` are (key, effect id) pairs as observed, one per receipt: the same effect id
    twice is a redelivery of one effect; two effect ids for one key are a duplicate. Keys in
    `ignore` (orders whose answer was lost, so the client cannot know) may have 0 or 1.
    """
    wanted = Counter(list(expected))  # a list: Counter would read a mapping as counts
    ignored = set(ignore)
    receipts = Counter(effects)
    by_key: dict[str, set[str]] = {}
    for key, effect in receipts:
        by_key.setdefault(key, set()).add(effect)
    result = Tally(expected=sum(wanted.values()))
    result.redelivered = sum(count - 1 for count in receipts.values())
    for key in sorted(wanted):
        seen = len(by_key.get(key, ()))
        if seen < wanted[key]:
            result.lost.append(key)
        elif seen > wanted[key]:
            result.duplicated.append(key)
    for key in sorted(by_key):
        if key in wanted:
            continue
        if key in ignored and len(by_key[key]) <= 1:
            continue
        result.unexpected.append(key)
    return result


def http_errors(statuses: Iterable[int]) -> dict[str, int]:
    """Every answer that was not a 201, by status ('0' for no answer at all)."""
    counts = Counter(str(status) for status in statuses if status != 201)
    return dict(sorted(counts.items()))


def forbidden_errors(statuses: Iterable[int]) -> int:
    """Answers outside what the API documents for an outage (anything but 201 or 503)."""
    return sum(1 for status in statuses if status not in ALLOWED_STATUSES)


@dataclass(frozen=True)
class Fault:
    """One injected fault: what, on what, from when to when (seconds since the run started)."""

    kind: str
    target: str
    start: float
    end: float


def recovery_time(
    fault: Fault, samples: Sequence[tuple[float, int]], *, slack: int
) -> float | None:
    """Seconds from the fault's end until the backlog is back to its level before the fault.

    `samples` are (time, backlog) pairs in time order; "back" means at most the last level
    seen before the fault started plus `slack` (the load's own in-flight work). None when it
    never came back within the samples.
    """
    before = [backlog for at, backlog in samples if at <= fault.start]
    baseline = before[-1] if before else 0
    for at, backlog in samples:
        if at >= fault.end and backlog <= baseline + slack:
            return at - fault.end
    return None


def summarize(tallies: Mapping[str, Tally]) -> dict[str, dict[str, int]]:
    """Counts per kind, for the report."""
    return {
        kind: {
            "expected": t.expected,
            "lost": len(t.lost),
            "duplicated": len(t.duplicated),
            "unexpected": len(t.unexpected),
            "redelivered": t.redelivered,
        }
        for kind, t in tallies.items()
    }


# -- every HTTP attempt, classified -----------------------------------------------------------

OUTAGE_503 = "503 during an outage"
GATEWAY_RESET = "connection reset by a killed gateway"
ALLOWED_CLASSES = frozenset({OUTAGE_503, GATEWAY_RESET})
# A request still open this long after a fault ended is that fault's (a reconnect, a
# queue of requests that waited for the dependency).
GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Call:
    """One HTTP attempt as the client saw it (seconds since the run started)."""

    sent: float
    answered: float
    status: int  # 0: no answer
    failure: str = ""  # with status 0: "connection" (refused, reset) or "timeout"


def _during(call: Call, faults: Iterable[Fault], grace: float) -> bool:
    return any(call.sent <= f.end + grace and call.answered >= f.start for f in faults)


def classify(
    calls: Iterable[Call],
    faults: Sequence[Fault],
    *,
    allows_503: Callable[[Fault], bool],
    resets: frozenset[str],
    grace: float = GRACE_SECONDS,
) -> dict[str, int]:
    """Every attempt that was not a 201, by class: a 503 during a fault that `allows_503`,
    a connection reset during a fault whose kind is in `resets`, or what else it was."""
    outages = [f for f in faults if allows_503(f)]
    resetting = [f for f in faults if f.kind in resets]
    counts: Counter[str] = Counter()
    for call in calls:
        if call.status == 201:
            continue
        if call.status == 503:
            key = OUTAGE_503 if _during(call, outages, grace) else "503 outside any outage"
        elif call.status == 0 and call.failure == "connection":
            key = GATEWAY_RESET if _during(call, resetting, grace) else "connection error"
        elif call.status == 0:
            key = "no answer (client timeout)"
        else:
            key = str(call.status)
        counts[key] += 1
    return dict(sorted(counts.items()))


def forbidden_classes(classes: Mapping[str, int]) -> int:
    """Attempts in a class the API does not document for the faults injected."""
    return sum(count for key, count in classes.items() if key not in ALLOWED_CLASSES)


def during_fault(
    fault: Fault, calls: Iterable[Call], *, grace: float = GRACE_SECONDS
) -> dict[str, float | int | None]:
    """What clients saw of one fault: its errors, how long its 503s took to come back
    (fail fast, not hang), and until when after its end errors went on."""
    errors = [c for c in calls if c.status != 201 and _during(c, [fault], grace)]
    latencies = sorted(c.answered - c.sent for c in errors if c.status == 503)
    last = max((c.answered for c in errors), default=None)
    return {
        "errors": len(errors),
        "503": len(latencies),
        "503_p50": round(statistics.median(latencies), 2) if latencies else None,
        "503_max": round(latencies[-1], 2) if latencies else None,
        "errors_until": None if last is None else round(max(0.0, last - fault.end), 1),
    }
