"""What every auth use case shares: settings, dependencies, name rules, a user's changes.

The use cases live by job: `registration` (sign-up, email verification, admin accounts),
`sessions` (login, refresh, logout: the tokens), `throttle` (the login throttle), `users`
(profiles and user administration). No Flask in any of them: the HTTP layer, the CLI and
tests all call them.

No use case commits: each adds its change and the events it raises (outbox rows) to the
caller's session, and the entry point commits them together (`shared.uow.unit_of_work`),
so an event is recorded exactly when the change is.

Every change to a user adds one to `User.version` and each user event carries it, so the
services that keep a copy of the user apply events in the order of the changes whatever
order they arrive in.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from services.auth.keys import KeyRing
from services.auth.models import Outbox, User
from services.auth.passwords import Passwords
from shared import contracts
from shared.db import utcnow
from shared.errors import UnprocessableError
from shared.outbox import record_event


@dataclass(frozen=True)
class AuthSettings:
    """Token and throttle settings the use cases need (taken from the app config)."""

    issuer: str
    audience: str
    access_ttl: int = 15 * 60
    refresh_ttl: int = 30 * 24 * 3600
    max_login_failures: int = 5
    login_window: int = 15 * 60
    # Across all addresses: past this many failures in the window, an account takes one
    # attempt per `account_login_delay` seconds (slower guessing, never a lock-out).
    account_max_failures: int = 20
    account_login_delay: int = 10
    # The address of the verification link mailed at registration; `?token=` follows.
    verify_email_url: str = "http://127.0.0.1:8080/api/v1/auth/verify-email"
    verification_ttl: int = 24 * 3600


@dataclass
class AuthDeps:
    """Everything the use cases depend on besides the session, wired once in create_app."""

    settings: AuthSettings
    passwords: Passwords
    keys: KeyRing
    clock: Callable[[], datetime] = field(default=utcnow)


def normalize_email(value: str) -> str:
    """The one stored form of an email: surrounding space stripped, lower-cased."""
    return value.strip().lower()


# Control characters, and line and paragraph separators: a name reaches mails and logs,
# where a line break could start a header or a forged log line.
_LINE_OR_CONTROL = frozenset({"Cc", "Zl", "Zp"})

NAME_WITH_CONTROL_CHARACTERS = "Line breaks and control characters are not allowed."


def name_has_control_characters(name: str) -> bool:
    """True when a name holds a line break, a tab or another control character."""
    return any(unicodedata.category(char) in _LINE_OR_CONTROL for char in name)


def check_name(name: str) -> str:
    """The name as stored (stripped); 422 when it is blank or holds a control character."""
    name = name.strip()
    if not name:
        raise UnprocessableError("The name is empty.", errors={"name": ["Must not be blank."]})
    if name_has_control_characters(name):
        raise UnprocessableError(
            NAME_WITH_CONTROL_CHARACTERS, errors={"name": [NAME_WITH_CONTROL_CHARACTERS]}
        )
    return name


def record_user_event(
    session: Session, event_type: str, user: User, data: dict[str, object] | None = None
) -> None:
    """Record one event about `user`, carrying its id and its current version."""
    # The newest version of the type in the contract catalogue (its dataclass).
    data_class = contracts.CATALOGUE.versions(event_type)[-1].data
    event = contracts.build(data_class(user_id=str(user.id), **(data or {}), version=user.version))
    record_event(session, event, model=Outbox)


def count_change(user: User, now: datetime) -> None:
    """Count one change of `user` (the caller holds its row lock, or it is new)."""
    user.version += 1
    user.updated_at = now
