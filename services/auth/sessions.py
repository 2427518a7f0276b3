"""Sessions: login, refresh-token rotation and logout, and the tokens they hand out.

A login has two steps around a commit: `throttle.begin_login` records the attempt, then
`finish_login` checks the password and issues a new token family. No use case here commits
(see `services`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.auth import throttle
from services.auth.keys import SigningKeyError
from services.auth.models import RefreshToken, User
from services.auth.services import AuthDeps, count_change
from services.auth.throttle import LoginAttempt
from shared.db import as_utc, rows_matched
from shared.errors import ServiceUnavailableError, UnauthorizedError
from shared.tokens import ACCESS_TOKEN_TYPE

log = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid email or password."
INVALID_REFRESH = "The refresh token is invalid, expired or revoked."


@dataclass(frozen=True)
class TokenPair:
    """An access token and its refresh token, as login and refresh return them."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


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
    _revoke(session, RefreshToken.family_id == family_id, now)


def revoke_user_tokens(session: Session, user_id: uuid.UUID, now: datetime) -> None:
    """Revoke every live refresh token of the user (a deactivation); no commit."""
    _revoke(session, RefreshToken.user_id == user_id, now)


def _revoke(session: Session, which: sa.ColumnElement[bool], now: datetime) -> None:
    session.execute(
        sa.update(RefreshToken)
        .where(which, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
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
    throttle.recheck(session=session, deps=deps, attempt=attempt)
    now = attempt.now
    user = session.scalar(sa.select(User).where(User.email == attempt.email))
    valid = deps.passwords.verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        # The attempt rows stay: they are now a recorded failure. Old rows go meanwhile.
        throttle.forget_old_failures(session=session, deps=deps, now=now)
        raise UnauthorizedError(INVALID_CREDENTIALS)

    rehash = deps.passwords.check_needs_rehash(user.password_hash)
    # Locked as in refresh_tokens, after the slow password check: a change being committed
    # is waited for and the token carries its result. Exclusively when the hash is to be
    # rewritten, so two such logins queue instead of deadlocking on a lock upgrade.
    session.refresh(user, with_for_update={"read": not rehash})
    if not user.is_active:
        raise UnauthorizedError(INVALID_CREDENTIALS)  # deactivated while we checked
    throttle.forget_success(session=session, attempt=attempt)
    if rehash:
        # Parameters were raised since this hash was made: upgrade it while we have the password.
        user.password_hash = deps.passwords.hash(password)
        count_change(user, now)
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
