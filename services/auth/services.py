"""Auth use cases. No Flask here: the HTTP layer, the CLI and tests all call these.

No use case commits: each adds its change and the events it raises (outbox rows) to the
caller's session, and the entry point commits them together (`shared.uow.unit_of_work`),
so an event is recorded exactly when the change is.

Every change to a user adds one to `User.version` and each user event carries it, so the
services that keep a copy of the user apply events in the order of the changes whatever
order they arrive in.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

import jwt
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.auth.keys import KeyRing, SigningKeyError
from services.auth.models import (
    ROLE_ADMIN,
    ROLE_USER,
    ROLES,
    EmailVerification,
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
    GoneError,
    NotFoundError,
    ServiceError,
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
INVALID_VERIFICATION = "The verification link is invalid or was already used."
EXPIRED_VERIFICATION = "The verification link has expired; register again for a new one."


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


# Control characters, and line and paragraph separators: a name reaches mails and logs,
# where a line break could start a header or a forged log line.
_LINE_OR_CONTROL = frozenset({"Cc", "Zl", "Zp"})
NAME_WITH_CONTROL_CHARACTERS = "Line breaks and control characters are not allowed."


def name_has_control_characters(name: str) -> bool:
    """True when a name holds a line break, a tab or another control character."""
    return any(unicodedata.category(char) in _LINE_OR_CONTROL for char in name)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise UnprocessableError("The name is empty.", errors={"name": ["Must not be blank."]})
    if name_has_control_characters(name):
        raise UnprocessableError(
            NAME_WITH_CONTROL_CHARACTERS, errors={"name": [NAME_WITH_CONTROL_CHARACTERS]}
        )
    return name


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
    name = _check_name(name)
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
    _record_user_event(session, "user.registered", user, {"email": email, "name": name})
    return user


def _record_user_event(
    session: Session, event_type: str, user: User, data: dict[str, object] | None = None
) -> None:
    """Record one event about `user`, carrying its id and its current version."""
    # The newest version of the type in the contract catalogue (its dataclass).
    data_class = contracts.CATALOGUE.versions(event_type)[-1].data
    event = contracts.build(data_class(user_id=str(user.id), **(data or {}), version=user.version))
    record_event(session, event, model=Outbox)


def _changed(user: User, now: datetime) -> None:
    """Count one change of `user` (the caller holds its row lock, or it is new)."""
    user.version += 1
    user.updated_at = now


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
            _changed(user, now)
            _record_user_event(session, "user.email_verified", user)
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
    _check_name(name)
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
        _changed(user, now)
        _record_user_event(session, "user.email_verified", user)
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
    # iat to the microsecond: a token refreshed right after a role change must be told apart
    # from one issued right before it (the gateway refuses those issued at or before it).
    issued_at = round(now.timestamp(), 6)
    claims = {
        "iss": deps.settings.issuer,
        "aud": deps.settings.audience,
        "sub": str(user.id),
        "iat": issued_at,
        "exp": int(issued_at) + deps.settings.access_ttl,
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


def finish_login(
    *, session: Session, deps: AuthDeps, attempt: LoginAttempt, password: str
) -> TokenPair:
    """Second step: re-count, check the password, then issue a new token family.

    Unknown email, wrong password and a deactivated account all answer the same 401,
    after the same argon2 work. The caller commits on 401 and 429 too: the attempt rows
    stay as a recorded failure (401), or are deleted when they came over a limit (429).
    """
    now, key = attempt.now, attempt.key
    limit = deps.settings.max_login_failures
    since = now - timedelta(seconds=deps.settings.login_window)
    count = _failures_since(session, key, since)
    if count > limit:
        _forget_attempt(session, attempt)
        raise _throttled(session, deps, key, count - 1, now)
    try:
        _slow_down_account(
            session, deps, attempt.account_key, since, now, ours=attempt.account_attempt_id
        )
    except TooManyRequestsError:
        _forget_attempt(session, attempt)
        raise

    user = session.scalar(sa.select(User).where(User.email == attempt.email))
    valid = deps.passwords.verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        # The attempt rows stay: they are now a recorded failure. Old rows go meanwhile.
        session.execute(
            sa.delete(LoginFailure)
            .where(LoginFailure.created_at <= since)
            .execution_options(synchronize_session=False)
        )
        raise UnauthorizedError(INVALID_CREDENTIALS)

    rehash = deps.passwords.check_needs_rehash(user.password_hash)
    # Locked as in refresh_tokens, after the slow password check: a change being committed
    # is waited for and the token carries its result. Exclusively when the hash is to be
    # rewritten, so two such logins queue instead of deadlocking on a lock upgrade.
    session.refresh(user, with_for_update={"read": not rehash})
    if not user.is_active:
        raise UnauthorizedError(INVALID_CREDENTIALS)  # deactivated while we checked
    session.execute(
        sa.delete(LoginFailure)
        .where(LoginFailure.key == key)
        .execution_options(synchronize_session=False)
    )
    # Only this attempt was no failure; the account's other failures keep counting.
    session.execute(
        sa.delete(LoginFailure)
        .where(LoginFailure.id == attempt.account_attempt_id)
        .execution_options(synchronize_session=False)
    )
    if rehash:
        # Parameters were raised since this hash was made: upgrade it while we have the password.
        user.password_hash = deps.passwords.hash(password)
        _changed(user, now)
    return _token_pair(session=session, deps=deps, user=user, now=now, family_id=uuid.uuid4())


def refresh_tokens(*, session: Session, deps: AuthDeps, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair; a second use of it revokes its family.

    The caller commits on 401 too: a revoked family must stay revoked.
    """
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
    # FOR SHARE: a role change or deactivation being committed is waited for, so the new
    # token carries the new role, and was issued (`now`) before any change it has not seen.
    user = session.get(User, token.user_id, with_for_update={"read": True})
    if user is None or not user.is_active:
        _revoke_family(session, family_id, now)
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
        _reuse_detected(session, family_id, user.id, now)
    return _token_pair(
        session=session, deps=deps, user=user, now=now, family_id=family_id, parent_id=token_id
    )


def _reuse_detected(
    session: Session, family_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> None:
    # A rotated token came back: whoever holds the family now may be an attacker.
    _revoke_family(session, family_id, now)
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

    Each change counts one version and records its event: `user.role_changed`,
    `user.deactivated` (which also revokes every refresh token of the user) or
    `user.reactivated`.
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
    user = _locked_user(session, user_id)
    removes_admin = user.id in active_admins and (
        (role is not None and role != ROLE_ADMIN) or active is False
    )
    if removes_admin and len(active_admins) <= 1:
        raise ConflictError(
            "This is the last active admin; promote another admin first.",
            errors={"role" if role is not None else "active": ["Last active admin."]},
        )
    now = deps.clock()
    if role is not None and role != user.role:
        user.role = role
        _changed(user, now)
        _record_user_event(session, "user.role_changed", user, {"role": role})
    if active is not None and active != user.is_active:
        user.is_active = active
        _changed(user, now)
        if active:
            user.deactivated_at = None
            _record_user_event(session, "user.reactivated", user)
        else:
            user.deactivated_at = now
            _revoke_user_tokens(session, user.id, now)
            _record_user_event(session, "user.deactivated", user)
    return user


def _locked_user(session: Session, user_id: str | uuid.UUID) -> User:
    """A user by id, its row locked until commit and read afresh (404 when unknown).

    The lock orders two concurrent changes of one user, so each gets its own version.
    """
    uid = _parse_user_id(user_id)
    user = (
        session.scalar(
            sa.select(User)
            .where(User.id == uid)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if uid is not None
        else None
    )
    if user is None:
        raise NotFoundError("No such user.")
    return user


def update_profile(*, session: Session, deps: AuthDeps, user_id: str, name: str) -> User:
    """Change the caller's own name; records `user.profile_changed` when it changed."""
    name = _check_name(name)
    get_active_user(session=session, user_id=user_id)  # 401 for an unknown or inactive one
    user = _locked_user(session, user_id)
    if not user.is_active:  # deactivated while we waited for the lock
        raise UnauthorizedError("The account no longer exists or is deactivated.")
    if name != user.name:
        user.name = name
        _changed(user, deps.clock())
        _record_user_event(
            session, "user.profile_changed", user, {"email": user.email, "name": user.name}
        )
    return user
