"""Users: looking them up, a user's own profile, and what admins change (role, active).

No use case here commits (see `services`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.auth.models import ROLE_ADMIN, ROLES, User
from services.auth.services import AuthDeps, check_name, count_change, record_user_event
from services.auth.sessions import revoke_user_tokens
from shared.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableError,
)
from shared.pagination import PageKey, keyset_page


@dataclass(frozen=True)
class UserPage:
    """One page of the admin user list."""

    items: list[User]
    next_cursor: PageKey | None


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
        count_change(user, now)
        record_user_event(session, "user.role_changed", user, {"role": role})
    if active is not None and active != user.is_active:
        user.is_active = active
        count_change(user, now)
        if active:
            user.deactivated_at = None
            record_user_event(session, "user.reactivated", user)
        else:
            user.deactivated_at = now
            revoke_user_tokens(session, user.id, now)
            record_user_event(session, "user.deactivated", user)
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
    name = check_name(name)
    get_active_user(session=session, user_id=user_id)  # 401 for an unknown or inactive one
    user = _locked_user(session, user_id)
    if not user.is_active:  # deactivated while we waited for the lock
        raise UnauthorizedError("The account no longer exists or is deactivated.")
    if name != user.name:
        user.name = name
        count_change(user, deps.clock())
        record_user_event(
            session, "user.profile_changed", user, {"email": user.email, "name": user.name}
        )
    return user
