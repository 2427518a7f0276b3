"""The login throttle: failed attempts counted per client address and email, and per account.

Every attempt is recorded as a failure before the password is checked (`begin_login`) and
committed, so concurrent attempts in other workers and replicas count it; a successful
login deletes it again. No use case here commits (see `services`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.auth.models import LoginFailure
from services.auth.services import AuthDeps, normalize_email
from shared.db import as_utc
from shared.errors import TooManyRequestsError


def throttle_key(client_ip: str, email: str) -> str:
    """The throttle bucket of one client address and one (normalised) email."""
    return hashlib.sha256(f"{client_ip}\n{email}".encode()).hexdigest()


def account_throttle_key(email: str) -> str:
    """The throttle bucket of one (normalised) email, whatever the client address."""
    return hashlib.sha256(f"account\n{email}".encode()).hexdigest()


def _failures_since(session: Session, key: str, since: datetime) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.key == key, LoginFailure.created_at > since)
        )
        or 0
    )


def _throttled(
    session: Session, deps: AuthDeps, key: str, count: int, now: datetime
) -> TooManyRequestsError:
    """429 with the seconds until enough of the window's failures have aged out."""
    window = timedelta(seconds=deps.settings.login_window)
    excess = max(0, count - deps.settings.max_login_failures)
    oldest_blocking = session.scalar(
        sa.select(LoginFailure.created_at)
        .where(LoginFailure.key == key, LoginFailure.created_at > now - window)
        .order_by(LoginFailure.created_at)
        .offset(excess)
        .limit(1)
    )
    frees_at = as_utc(oldest_blocking) + window if oldest_blocking is not None else now + window
    retry_after = int((frees_at - now).total_seconds()) + 1
    return TooManyRequestsError(
        "Too many failed logins for this account from your address; try again later.",
        retry_after=retry_after,
    )


def _slow_down_account(
    session: Session,
    deps: AuthDeps,
    account_key: str,
    since: datetime,
    now: datetime,
    *,
    ours: int | None = None,
) -> None:
    """429 while an account with many recent failures had an attempt less than a delay ago.

    Counted across client addresses, so spreading guesses over many addresses gains
    nothing past `account_max_failures`; the owner is slowed by seconds, never locked out.
    `ours` is this request's own attempt row, already committed: another attempt in the
    same delay (a concurrent one included) means this one waits.
    """
    settings = deps.settings
    earlier = _failures_since(session, account_key, since) - (1 if ours is not None else 0)
    if earlier < settings.account_max_failures:
        return
    delay = timedelta(seconds=settings.account_login_delay)
    query = sa.select(sa.func.max(LoginFailure.created_at)).where(
        LoginFailure.key == account_key, LoginFailure.created_at > now - delay
    )
    if ours is not None:
        query = query.where(LoginFailure.id != ours)
    latest = session.scalar(query)
    if latest is None:
        return
    retry_after = max(1, int((as_utc(latest) + delay - now).total_seconds()) + 1)
    raise TooManyRequestsError(
        "Too many failed logins for this account; try again in a few seconds.",
        retry_after=retry_after,
    )


@dataclass(frozen=True)
class LoginAttempt:
    """A login in progress: its throttle buckets, its recorded attempt rows, when it began."""

    email: str
    key: str
    account_key: str
    attempt_id: int
    account_attempt_id: int
    now: datetime


def begin_login(*, session: Session, deps: AuthDeps, email: str, client_ip: str) -> LoginAttempt:
    """First step of a login: 429 when throttled, else record the attempt (a failure so far).

    The caller commits the attempt before `finish_login`, so that concurrent attempts in
    other workers and replicas see it when they count (see `api.log_in`).
    """
    email = normalize_email(email)
    now = deps.clock()
    since = now - timedelta(seconds=deps.settings.login_window)
    key = throttle_key(client_ip, email)
    account_key = account_throttle_key(email)
    count = _failures_since(session, key, since)
    if count >= deps.settings.max_login_failures:
        raise _throttled(session, deps, key, count, now)
    _slow_down_account(session, deps, account_key, since, now)
    attempt = LoginFailure(key=key, created_at=now)
    account_attempt = LoginFailure(key=account_key, created_at=now)
    session.add_all([attempt, account_attempt])
    session.flush()
    return LoginAttempt(
        email=email,
        key=key,
        account_key=account_key,
        attempt_id=attempt.id,
        account_attempt_id=account_attempt.id,
        now=now,
    )


def _forget_attempt(session: Session, attempt: LoginAttempt) -> None:
    session.execute(
        sa.delete(LoginFailure)
        .where(LoginFailure.id.in_([attempt.attempt_id, attempt.account_attempt_id]))
        .execution_options(synchronize_session=False)
    )


def recheck(*, session: Session, deps: AuthDeps, attempt: LoginAttempt) -> None:
    """Count again with the attempt committed: 429 (and its rows deleted) past a limit.

    Concurrent attempts committed since `begin_login` count now, so a burst of parallel
    guesses cannot all pass the first count.
    """
    now, key = attempt.now, attempt.key
    since = now - timedelta(seconds=deps.settings.login_window)
    count = _failures_since(session, key, since)
    if count > deps.settings.max_login_failures:
        _forget_attempt(session, attempt)
        raise _throttled(session, deps, key, count - 1, now)
    try:
        _slow_down_account(
            session, deps, attempt.account_key, since, now, ours=attempt.account_attempt_id
        )
    except TooManyRequestsError:
        _forget_attempt(session, attempt)
        raise


def forget_old_failures(*, session: Session, deps: AuthDeps, now: datetime) -> None:
    """Delete the failures older than the window, which no limit counts any more."""
    since = now - timedelta(seconds=deps.settings.login_window)
    session.execute(
        sa.delete(LoginFailure)
        .where(LoginFailure.created_at <= since)
        .execution_options(synchronize_session=False)
    )


def forget_success(*, session: Session, attempt: LoginAttempt) -> None:
    """A login succeeded: clear its client's failures for the address, and its own attempt."""
    session.execute(
        sa.delete(LoginFailure)
        .where(LoginFailure.key == attempt.key)
        .execution_options(synchronize_session=False)
    )
    # Only this attempt was no failure; the account's other failures keep counting.
    session.execute(
        sa.delete(LoginFailure)
        .where(LoginFailure.id == attempt.account_attempt_id)
        .execution_options(synchronize_session=False)
    )
