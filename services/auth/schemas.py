"""Request and response bodies of the auth API (marshmallow); unknown fields are refused."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.auth.models import ROLES
from services.auth.services import (
    NAME_WITH_CONTROL_CHARACTERS,
    name_has_control_characters,
    normalize_email,
)
from shared.pagination import CursorField, PageQueryArgsSchema, page_limit
from shared.schemas import StrictBoolean, StrictSchema, UtcDateTime

MAX_PASSWORD_INPUT = 1024  # login only: bounds the hashing work spent on junk input
MAX_TOKEN_INPUT = 512
# Every token auth hands out is URL-safe base64 (secrets.token_urlsafe). Saying so in the
# schema documents what anything else gets: a 422 (a NUL or a lone surrogate, say, could
# not even be looked up), not the 400/401 of a well-formed token that matches nothing.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]+$"


def _token() -> fields.String:
    """An opaque token as sent back to auth: 1 to 512 URL-safe base64 characters."""
    return fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=MAX_TOKEN_INPUT),
            validate.Regexp(TOKEN_PATTERN, error="Must be a token as issued (URL-safe base64)."),
        ],
    )


class NormalizedEmail(fields.Email):
    """An email field that strips and lower-cases before validating."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        return normalize_email(raw)


def _email() -> NormalizedEmail:
    return NormalizedEmail(required=True, validate=validate.Length(max=320))


def _no_line_breaks_or_control_characters(value: str) -> None:
    if name_has_control_characters(value):
        raise ValidationError(NAME_WITH_CONTROL_CHARACTERS)


class RegisterSchema(StrictSchema):
    """POST /register body. The password policy (length, common list) runs in the use case."""

    email = _email()
    # No length rule here: the policy's own message covers too short and too long.
    password = fields.String(required=True, load_only=True)
    name = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=200), _no_line_breaks_or_control_characters],
    )


class RegistrationSchema(Schema):
    """What registration answers, whether or not the address was free."""

    email = fields.String(dump_only=True)
    detail = fields.String(dump_only=True)


class VerifyEmailSchema(StrictSchema):
    """POST /verify-email body: the token of the mailed link."""

    token = _token()


class VerifyEmailArgsSchema(StrictSchema):
    """GET /verify-email query: the link as mailed."""

    token = _token()


class LoginSchema(StrictSchema):
    """POST /login body."""

    email = _email()
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=MAX_PASSWORD_INPUT)
    )


class RefreshTokenSchema(StrictSchema):
    """POST /refresh and /logout body: the opaque refresh token."""

    refresh_token = _token()


class TokenPairSchema(Schema):
    """What login and refresh return."""

    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)


class UserSchema(Schema):
    """A user as the API shows it (never the password hash)."""

    id = fields.UUID(dump_only=True)
    email = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    active = fields.Boolean(dump_only=True)
    email_verified = fields.Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class UserPatchSchema(StrictSchema):
    """PATCH /users/{id} body: what an admin may change; at least one field."""

    MIN_PROPERTIES = 1  # documented as minProperties (shared.openapi); `_not_empty` enforces it

    role = fields.String(validate=validate.OneOf(ROLES))
    active = StrictBoolean()

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one of: role, active.", "_schema")


class ProfilePatchSchema(StrictSchema):
    """PATCH /me body: what users may change about themselves (an email change would need
    the new address verified first, so it is not offered here)."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class UserQueryArgsSchema(PageQueryArgsSchema):
    """GET /users query: page size and the opaque cursor of the previous page."""

    limit = page_limit(default=50)


class UserPageSchema(Schema):
    """One page of users, newest first, and the cursor of the next page (null at the end)."""

    items = fields.List(fields.Nested(UserSchema))
    next_cursor = CursorField(allow_none=True)


class JWKSchema(Schema):
    """One public key of the JWKS."""

    kty = fields.String()
    kid = fields.String()
    alg = fields.String()
    use = fields.String()
    n = fields.String()
    e = fields.String()


class JWKSSchema(Schema):
    """The JSON Web Key Set: every key that may have signed a live token."""

    keys = fields.List(fields.Nested(JWKSchema))
