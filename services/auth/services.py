"""Auth use cases. No Flask here: the HTTP layer, the CLI and tests all call these.

Each use case that changes state commits once, with its outbox row in the same
transaction, so an event is recorded exactly when the change is.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import jwt
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.auth.keys import KeyRing, SigningKeyError
from services.auth.models import (
    ROLE_ADMIN,
    ROLE_USER,
    ROLES,
    LoginFailure,
    Outbox,
    RefreshToken,
    User,
)
from services.auth.passwords import Passwords, password_problems
from shared import contracts
from shared.db import as_utc, rows_matched, utcnow
from shared.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
    UnprocessableError,
)
from shared.outbox import record_event
from shared.pagination import PageKey, keyset_page
from shared.tokens import ACCESS_TOKEN_TYPE

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid email or password."
INVALID_REFRESH = "The refresh token is invalid, expired or revoked."


@dataclass(frozen=True)
class AuthSettings:
    """Token and throttle settings the use cases need (taken from the app config)."""

    issuer: str
    audience: str
    access_ttl: int = 15 * 60
    refresh_ttl: int = 30 * 24 * 3600
    max_login_failures: int = 5
    login_window: int = 15 * 60


@dataclass
class AuthDeps:
    """Everything the use cases depend on besides the session, wired once in create_app."""

    settings: AuthSettings
    passwords: Passwords
    keys: KeyRing
    clock: Callable[[], datetime] = field(default=utcnow)


@dataclass(frozen=True)
class TokenPair:
    """An access token and its refresh token, as login and refresh return them."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


@dataclass(frozen=True)
class UserPage:
    """One page of the admin user list."""

    items: list[User]
    next_cursor: PageKey | None


# -- registration and admins -----------------------------------------------------------


def normalize_email(value: str) -> str:
    """The one stored form of an email: surrounding space stripped, lower-cased."""
    return value.strip().lower()


def _check_password(password: str) -> None:
    problems = password_problems(password)
    if problems:
        raise UnprocessableError(
            "The password does not meet the password policy.", errors={"password": problems}
        )


def _email_taken() -> ConflictError:
    return ConflictError(
        "An account with this email already exists.",
        errors={"email": ["An account with this email already exists."]},
    )


def _create_user(
    *, session: Session, deps: AuthDeps, email: str, password: str, name: str, role: str
) -> User:
    email = normalize_email(email)
    name = name.strip()
    if not name:
        raise UnprocessableError("The name is empty.", errors={"name": ["Must not be blank."]})
    _check_password(password)
    # A cheap early answer; the unique index below is what makes it race-safe.
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise _email_taken()
    now = deps.clock()
    user = User(
        id=uuid.uuid4(),
        email=email,
        name=name,
        password_hash=deps.passwords.hash(password),
        role=role,
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    # A new user is at version 1 (the first state anyone hears of).
    event = contracts.build(
        contracts.UserRegisteredV1(user_id=str(user.id), email=email, name=name, version=1)
    )
    record_event(session, event, model=Outbox)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _email_taken() from None
    return user


def register_user(
    *, session: Session, deps: AuthDeps, email: str, password: str, name: str
) -> User:
    """Create a user account and record `user.registered` in the same transaction."""
    return _create_user(
        session=session, deps=deps, email=email, password=password, name=name, role=ROLE_USER
    )


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


# -- tokens ----------------------------------------------------------------------------


def hash_refresh_token(token: str) -> str:
    """SHA-256 hex of a refresh token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_access_token(*, deps: AuthDeps, user: User, now: datetime) -> str:
    """An RS256 access token for `user` signed by the newest key."""
    try:
        key = deps.keys.signing_key()
    except SigningKeyError as exc:
        log.error("cannot sign tokens", extra={"error": str(exc)})
        raise ServiceUnavailableError("Tokens cannot be issued right now.") from None
    issued_at = int(now.timestamp())
    claims = {
        "iss": deps.settings.issuer,
        "aud": deps.settings.audience,
        "sub": str(user.id),
        "iat": issued_at,
        "exp": issued_at + deps.settings.access_ttl,
        "jti": uuid.uuid4().hex,
        "roles": [user.role],
    }
    return jwt.encode(
        claims,
        key.private_key,
        algorithm="RS256",
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )


def _add_refresh_token(
    *,
    session: Session,
    deps: AuthDeps,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    parent_id: uuid.UUID | None,
    now: datetime,
) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            id=uuid.uuid4(),
            user_id=user_id,
            family_id=family_id,
            parent_id=parent_id,
            token_hash=hash_refresh_token(token),
            created_at=now,
            expires_at=now + timedelta(seconds=deps.settings.refresh_ttl),
        )
    )
    return token


def _token_pair(
    *,
    session: Session,
    deps: AuthDeps,
    user: User,
    now: datetime,
    family_id: uuid.UUID,
    parent_id: uuid.UUID | None = None,
) -> TokenPair:
    refresh = _add_refresh_token(
        session=session,
        deps=deps,
        user_id=user.id,
        family_id=family_id,
        parent_id=parent_id,
        now=now,
    )
    return TokenPair(
        access_token=issue_access_token(deps=deps, user=user, now=now),
        refresh_token=refresh,
        expires_in=deps.settings.access_ttl,
    )


def _revoke_family(session: Session, family_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        sa.update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def _revoke_user_tokens(session: Session, user_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        sa.update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


# -- login and its throttle ------------------------------------------------------------


def throttle_key(client_ip: str, email: str) -> str:
    """The throttle bucket of one client address and one (normalised) email."""
    return hashlib.sha256(f"{client_ip}\n{email}".encode()).hexdigest()


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


def authenticate(
    *, session: Session, deps: AuthDeps, email: str, password: str, client_ip: str
) -> TokenPair:
    """Log in: check the throttle and the password, then issue a new token family.

    Unknown email, wrong password and a deactivated account all answer the same 401,
    after the same argon2 work. The attempt is written (and committed) before the
    password is checked and the count re-read after, so concurrent attempts in other
    workers are counted too: at most `max_login_failures` guesses per window get through.
    """
    email = normalize_email(email)
    now = deps.clock()
    limit = deps.settings.max_login_failures
    since = now - timedelta(seconds=deps.settings.login_window)
    key = throttle_key(client_ip, email)

    count = _failures_since(session, key, since)
    if count >= limit:
        raise _throttled(session, deps, key, count, now)
    attempt = LoginFailure(key=key, created_at=now)
    session.add(attempt)
    session.commit()
    count = _failures_since(session, key, since)
    if count > limit:
        session.delete(attempt)
        session.commit()
        raise _throttled(session, deps, key, count - 1, now)

    user = session.scalar(sa.select(User).where(User.email == email))
    valid = deps.passwords.verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        # The attempt row stays: it is now a recorded failure. Old rows go while we are here.
        session.execute(sa.delete(LoginFailure).where(LoginFailure.created_at <= since))
        session.commit()
        raise UnauthorizedError(INVALID_CREDENTIALS)

    session.execute(sa.delete(LoginFailure).where(LoginFailure.key == key))
    if deps.passwords.check_needs_rehash(user.password_hash):
        # Parameters were raised since this hash was made: upgrade it while we have the password.
        user.password_hash = deps.passwords.hash(password)
        user.updated_at = now
    pair = _token_pair(session=session, deps=deps, user=user, now=now, family_id=uuid.uuid4())
    session.commit()
    return pair


def refresh_tokens(*, session: Session, deps: AuthDeps, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; a second use of it revokes its family."""
    now = deps.clock()
    token = session.scalar(
        sa.select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
    )
    if token is None or token.revoked_at is not None:
        raise UnauthorizedError(INVALID_REFRESH)
    family_id, token_id = token.family_id, token.id
    if token.rotated_at is not None:
        _reuse_detected(session, family_id, token.user_id, now)
    if as_utc(token.expires_at) <= now:
        raise UnauthorizedError(INVALID_REFRESH)
    user = session.get(User, token.user_id)
    if user is None or not user.is_active:
        _revoke_family(session, family_id, now)
        session.commit()
        raise UnauthorizedError(INVALID_REFRESH)
    # Claim the token atomically: of two concurrent uses exactly one sees rowcount 1.
    claimed = session.execute(
        sa.update(RefreshToken)
        .where(
            RefreshToken.id == token_id,
            RefreshToken.rotated_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(rotated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rows_matched(claimed) != 1:
        session.rollback()
        _reuse_detected(session, family_id, user.id, now)
    pair = _token_pair(
        session=session, deps=deps, user=user, now=now, family_id=family_id, parent_id=token_id
    )
    session.commit()
    return pair


def _reuse_detected(
    session: Session, family_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> None:
    # A rotated token came back: whoever holds the family now may be an attacker.
    _revoke_family(session, family_id, now)
    session.commit()
    log.warning(
        "refresh token re-used; family revoked",
        extra={"user_id": str(user_id), "family_id": str(family_id)},
    )
    raise UnauthorizedError(INVALID_REFRESH)


def logout(*, session: Session, deps: AuthDeps, user_id: str, refresh_token: str) -> None:
    """Revoke the refresh token's family; unknown or someone else's tokens change nothing."""
    token = session.scalar(
        sa.select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
    )
    if token is not None and str(token.user_id) == user_id:
        _revoke_family(session, token.family_id, deps.clock())
        session.commit()


# -- users -----------------------------------------------------------------------------


def _parse_user_id(user_id: str | uuid.UUID) -> uuid.UUID | None:
    if isinstance(user_id, uuid.UUID):
        return user_id
    try:
        return uuid.UUID(user_id)
    except ValueError:
        return None


def get_user(*, session: Session, user_id: str | uuid.UUID) -> User:
    """A user by id, or NotFoundError."""
    uid = _parse_user_id(user_id)
    user = session.get(User, uid) if uid is not None else None
    if user is None:
        raise NotFoundError("No such user.")
    return user


def get_active_user(*, session: Session, user_id: str | uuid.UUID) -> User:
    """The (still active) user a token was issued to, or 401."""
    uid = _parse_user_id(user_id)
    user = session.get(User, uid) if uid is not None else None
    if user is None or not user.is_active:
        raise UnauthorizedError("The account no longer exists or is deactivated.")
    return user


def _require_admin(session: Session, actor_id: str) -> User:
    # The token said admin; the database has the last word (a demotion takes effect now).
    actor = get_active_user(session=session, user_id=actor_id)
    if actor.role != ROLE_ADMIN:
        raise ForbiddenError("This action needs the role: admin")
    return actor


def list_users(
    *, session: Session, actor_id: str, limit: int = 50, after: PageKey | None = None
) -> UserPage:
    """Users newest first, `limit` per page, keyset-paginated (admins only)."""
    _require_admin(session, actor_id)
    users, next_cursor = keyset_page(
        session,
        sa.select(User),
        created_at=User.created_at,
        id=User.id,
        limit=limit,
        after=after,
    )
    return UserPage(items=users, next_cursor=next_cursor)


def update_user(
    *,
    session: Session,
    deps: AuthDeps,
    actor_id: str,
    user_id: str | uuid.UUID,
    role: str | None = None,
    active: bool | None = None,
) -> User:
    """Change a user's role and/or active flag (admins only); never the last active admin.

    Deactivating revokes every refresh token of the user and records `user.deactivated`.
    """
    _require_admin(session, actor_id)
    if role is not None and role not in ROLES:
        raise UnprocessableError("Unknown role.", errors={"role": [f"One of: {', '.join(ROLES)}."]})
    # Lock the active admins in one statement, in id order, before reading the target:
    # two admins demoting each other at once then serialise instead of both succeeding.
    active_admins = set(
        session.scalars(
            sa.select(User.id)
            .where(User.role == ROLE_ADMIN, User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
    )
    user = get_user(session=session, user_id=user_id)
    session.refresh(user)
    removes_admin = user.id in active_admins and (
        (role is not None and role != ROLE_ADMIN) or active is False
    )
    if removes_admin and len(active_admins) <= 1:
        session.rollback()
        raise ConflictError(
            "This is the last active admin; promote another admin first.",
            errors={"role" if role is not None else "active": ["Last active admin."]},
        )
    now = deps.clock()
    changed = False
    if role is not None and role != user.role:
        user.role = role
        changed = True
    if active is not None and active != user.is_active:
        user.is_active = active
        changed = True
        if active:
            user.deactivated_at = None
        else:
            user.deactivated_at = now
            _revoke_user_tokens(session, user.id, now)
            # TODO(user versions): auth keeps no per-user counter yet; until it does, every
            # deactivation says version 1 and no projection orders by it.
            event = contracts.build(contracts.UserDeactivatedV1(user_id=str(user.id), version=1))
            record_event(session, event, model=Outbox)
    if changed:
        user.updated_at = now
    session.commit()
    return user
