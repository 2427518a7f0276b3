"""The auth service's tables: users, email verifications, refresh tokens, failed logins, outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import NAMING_CONVENTION, utcnow
from shared.outbox import OutboxMixin

ROLE_USER = "user"
ROLE_ADMIN = "admin"
ROLES = (ROLE_USER, ROLE_ADMIN)

# A BIGINT that SQLite still treats as its rowid alias (autoincrement works there).
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class AuthBase(DeclarativeBase):
    """This service's declarative base: its own metadata, with the suite's naming convention.

    Not `shared.db.Base` itself: every service's models would then share one MetaData and
    one registry, and two services' `outbox` tables could not be imported in one process.
    """

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=AuthBase)

if TYPE_CHECKING:
    # flask-sqlalchemy types db.Model as a variable, which mypy refuses as a base class.
    Model = AuthBase
else:
    Model = db.Model


class User(Model):
    """An account; `role` is "user" or "admin", `is_active` false once deactivated."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("role IN ('user', 'admin')", name="role_known"),
        # Keyset pagination of the admin list walks (created_at, id) newest first.
        sa.Index("ix_users_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    # Stored normalised (stripped, lower-case); the unique index makes a taken email a 409.
    email: Mapped[str] = mapped_column(sa.String(320), unique=True, index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16), default=ROLE_USER, server_default=ROLE_USER)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    deactivated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Set once the owner of the address followed the link mailed at registration.
    email_verified_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # One more on every change: each user event carries it, so the other services' copies
    # can tell a late (older) event from a new one and ignore it.
    version: Mapped[int] = mapped_column(sa.Integer, default=1, server_default="1")

    @property
    def active(self) -> bool:
        """The API's name for is_active."""
        return self.is_active

    @property
    def email_verified(self) -> bool:
        """Whether the owner of the address has confirmed it."""
        return self.email_verified_at is not None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}{'' if self.is_active else ' inactive'}>"


class RefreshToken(Model):
    """One opaque refresh token (only its SHA-256 is kept), a link in a rotation family.

    Each use rotates it: `rotated_at` is set and a child with the same `family_id` is
    issued. Presenting a rotated token again means it leaked, so the family is revoked.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    family_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("refresh_tokens.id", ondelete="SET NULL")
    )
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    rotated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class EmailVerification(Model):
    """A single-use link that proves the user receives mail at their address.

    Only the token's SHA-256 is kept: whoever reads this table cannot verify an address.
    """

    __tablename__ = "email_verifications"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # The address the link was sent to: an address changed since is not verified by it.
    email: Mapped[str] = mapped_column(sa.String(320))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LoginFailure(Model):
    """A failed (or in-flight) login for one IP+email key; the throttle counts these rows.

    Kept in the database so every gunicorn worker and replica sees the same count, on
    SQLite under `make run` as on PostgreSQL.
    """

    __tablename__ = "login_failures"
    __table_args__ = (sa.Index("ix_login_failures_key_created_at", "key", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # SHA-256 of "ip\nemail": fixed width, and no addresses or emails kept in clear.
    key: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, index=True
    )


class Outbox(OutboxMixin, Model):
    """Events waiting for the relay; written in the same transaction as the change."""
