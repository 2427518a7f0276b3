"""Registration: sign-up, the address-verification link, admin accounts made by operators.

A registration answers alike whether or not the address is taken; the owner of a taken
address gets a warning mail instead. No use case here commits (see `services`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.auth.models import ROLE_ADMIN, ROLE_USER, EmailVerification, Outbox, User
from services.auth.passwords import password_problems
from services.auth.services import (
    AuthDeps,
    check_name,
    count_change,
    normalize_email,
    record_user_event,
)
from shared import contracts
from shared.db import as_utc, rows_matched
from shared.errors import ConflictError, GoneError, ServiceError, UnprocessableError
from shared.outbox import record_event

INVALID_VERIFICATION = "The verification link is invalid or was already used."
EXPIRED_VERIFICATION = "The verification link has expired; register again for a new one."


def _check_password(password: str, email: str) -> None:
    problems = password_problems(password, email=email)
    if problems:
        raise UnprocessableError(
            "The password does not meet the password policy.", errors={"password": problems}
        )


def _email_taken() -> ConflictError:
    return ConflictError(
        "An account with this email already exists.",
        errors={"email": ["An account with this email already exists."]},
    )


def _new_user(
    *,
    session: Session,
    deps: AuthDeps,
    email: str,
    password: str,
    name: str,
    role: str,
    now: datetime,
) -> User:
    """Add a user and its `user.registered` event to the session (no commit)."""
    email = normalize_email(email)
    name = check_name(name)
    _check_password(password, email)
    user = User(
        id=uuid.uuid4(),
        email=email,
        name=name,
        password_hash=deps.passwords.hash(password),
        role=role,
        is_active=True,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(user)
    record_user_event(session, "user.registered", user, {"email": email, "name": name})
    return user


def _create_user(
    *, session: Session, deps: AuthDeps, email: str, password: str, name: str, role: str
) -> User:
    email = normalize_email(email)
    # A cheap early answer; the unique index below is what makes it race-safe.
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise _email_taken()
    now = deps.clock()
    try:
        # A savepoint: a lost race is a 409, and the caller's transaction stays usable
        # (ensure_bootstrap_admin reads the winner's row after it).
        with session.begin_nested():
            user = _new_user(
                session=session,
                deps=deps,
                email=email,
                password=password,
                name=name,
                role=role,
                now=now,
            )
            # Accounts made by an operator (CLI, bootstrap admin) have a known address.
            user.email_verified_at = now
            count_change(user, now)
            record_user_event(session, "user.email_verified", user)
    except IntegrityError:
        raise _email_taken() from None
    return user


@dataclass(frozen=True)
class Registration:
    """What a registration answers: the same whether or not the address was free."""

    email: str
    detail: str = "Check your mailbox: a link to verify your address is on its way."


def register_user(
    *, session: Session, deps: AuthDeps, email: str, password: str, name: str
) -> Registration:
    """Register, or warn the owner of a taken address; both answer alike. No commit.

    A new account gets `user.registered` and `user.verification_requested` (the link).
    A taken address changes nothing but `user.registration_attempted`, the owner's warning
    mail, after the same password hashing, so neither answer nor timing tells the caller
    who has an account.
    """
    email = normalize_email(email)
    check_name(name)
    _check_password(password, email)
    now = deps.clock()
    owner = session.scalar(sa.select(User).where(User.email == email))
    if owner is not None:
        deps.passwords.hash(password)
        event = contracts.build(contracts.UserRegistrationAttemptedV1(user_id=str(owner.id)))
        record_event(session, event, model=Outbox)
        return Registration(email=email)
    try:
        # The user's row first: the link refers to it. The unique index shows a race here;
        # a savepoint keeps the caller's transaction usable after it.
        with session.begin_nested():
            user = _new_user(
                session=session,
                deps=deps,
                email=email,
                password=password,
                name=name,
                role=ROLE_USER,
                now=now,
            )
    except IntegrityError:
        # A concurrent registration took the address since our look-up: answer alike.
        return Registration(email=email)
    request_email_verification(session=session, deps=deps, user=user, now=now)
    return Registration(email=email)


def hash_verification_token(token: str) -> str:
    """SHA-256 hex of a verification token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def request_email_verification(
    *, session: Session, deps: AuthDeps, user: User, now: datetime
) -> None:
    """Add a single-use verification link and `user.verification_requested` (no commit)."""
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=deps.settings.verification_ttl)
    session.add(
        EmailVerification(
            id=uuid.uuid4(),
            user_id=user.id,
            email=user.email,
            token_hash=hash_verification_token(token),
            created_at=now,
            expires_at=expires_at,
        )
    )
    event = contracts.build(
        contracts.UserVerificationRequestedV1(
            user_id=str(user.id),
            email=user.email,
            name=user.name,
            verify_url=f"{deps.settings.verify_email_url}?{urlencode({'token': token})}",
            expires_at=expires_at,
        )
    )
    record_event(session, event, model=Outbox)


def verify_email(*, session: Session, deps: AuthDeps, token: str) -> User:
    """Mark the address of a verification link verified; 400 invalid or used, 410 expired.

    The link is spent in one conditional UPDATE, so of two concurrent uses one wins.
    Records `user.email_verified` the first time the address is verified. No commit.
    """
    now = deps.clock()
    link = session.scalar(
        sa.select(EmailVerification).where(
            EmailVerification.token_hash == hash_verification_token(token)
        )
    )
    if link is None or link.used_at is not None:
        raise ServiceError(INVALID_VERIFICATION)
    if as_utc(link.expires_at) <= now:
        raise GoneError(EXPIRED_VERIFICATION)
    spent = session.execute(
        sa.update(EmailVerification)
        .where(EmailVerification.id == link.id, EmailVerification.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if rows_matched(spent) != 1:
        raise ServiceError(INVALID_VERIFICATION)
    # Locked: the version this change counts must not be counted by another one as well.
    user = session.get(User, link.user_id, with_for_update=True, populate_existing=True)
    if user is None or user.email != link.email:
        # The address changed since the link was sent: it proves nothing about the new one.
        raise ServiceError(INVALID_VERIFICATION)
    if user.email_verified_at is None:
        user.email_verified_at = now
        count_change(user, now)
        record_user_event(session, "user.email_verified", user)
    return user


def create_admin(*, session: Session, deps: AuthDeps, email: str, password: str, name: str) -> User:
    """Create an admin account (CLI); the same rules and event as a registration."""
    return _create_user(
        session=session, deps=deps, email=email, password=password, name=name, role=ROLE_ADMIN
    )


class BootstrapAccountTaken(ConflictError):
    """The bootstrap address belongs to an account that is not an admin."""


def ensure_bootstrap_admin(
    *, session: Session, deps: AuthDeps, email: str, password: str, name: str
) -> tuple[User, bool]:
    """Create the bootstrap admin once; never change an existing account.

    Returns (user, created). An existing admin is left exactly as it is (its password may
    have been changed, other admins may have deactivated it). An existing account that is
    not an admin raises BootstrapAccountTaken: whoever registered the address first must
    not become admin through a restart, whatever password they chose.
    """
    email = normalize_email(email)
    for _ in range(2):
        user = session.scalar(sa.select(User).where(User.email == email))
        if user is None:
            try:
                return (
                    create_admin(
                        session=session, deps=deps, email=email, password=password, name=name
                    ),
                    True,
                )
            except ConflictError:
                continue  # another process created it a moment ago: read it again
        if user.role != ROLE_ADMIN:
            raise BootstrapAccountTaken(
                f"AUTH_BOOTSTRAP_ADMIN_EMAIL {email} belongs to an existing account that is not"
                " an admin; it is left unchanged. Choose another address or unset"
                " AUTH_BOOTSTRAP_ADMIN_EMAIL."
            )
        return user, False
    raise ConflictError("The bootstrap admin could not be created; try again.")
