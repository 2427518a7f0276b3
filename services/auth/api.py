"""HTTP layer of the auth service: parse, call a use case, shape the answer. No rules here."""

# flask-smorest ships no type hints, so each of its decorators would be reported.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask.views import MethodView
from sqlalchemy.orm import Session

from services.auth import registration, sessions, throttle, users
from services.auth.models import User, db
from services.auth.registration import Registration
from services.auth.schemas import (
    JWKSSchema,
    LoginSchema,
    ProfilePatchSchema,
    RefreshTokenSchema,
    RegisterSchema,
    RegistrationSchema,
    TokenPairSchema,
    UserPageSchema,
    UserPatchSchema,
    UserQueryArgsSchema,
    UserSchema,
    VerifyEmailArgsSchema,
    VerifyEmailSchema,
)
from services.auth.services import AuthDeps
from services.auth.sessions import TokenPair
from services.auth.users import UserPage
from shared.app import ApiBlueprint
from shared.errors import TooManyRequestsError, UnauthorizedError
from shared.openapi import operation
from shared.tokens import current_principal, require_auth, require_role
from shared.uow import unit_of_work

blp = ApiBlueprint("auth", __name__, url_prefix="/api/v1/auth", description="Accounts and tokens.")
well_known_blp = ApiBlueprint(
    "well_known", __name__, url_prefix="/.well-known", description="Discovery documents."
)

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
# Gateways and services cache the key set; a rotation is picked up on an unknown kid anyway.
JWKS_CACHE_CONTROL = {"Cache-Control": "public, max-age=60"}
# A response carrying a token must never be stored by a cache (RFC 6749 5.1, RFC 9700).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _deps() -> AuthDeps:
    deps: AuthDeps = current_app.extensions["auth"]
    return deps


def _session() -> Session:
    return db.session()


def log_in(
    *, session: Session, deps: AuthDeps, email: str, password: str, client_ip: str
) -> TokenPair:
    """A login in two transactions: the attempt is committed before the password is checked.

    So concurrent attempts in other workers are counted too: at most `max_login_failures`
    guesses per window get through. A refused login (401, or 429 on the re-count) commits
    as well: the failure must be counted although the request fails.
    """
    with unit_of_work(session):
        attempt = throttle.begin_login(session=session, deps=deps, email=email, client_ip=client_ip)
    with unit_of_work(session, commit_on=(UnauthorizedError, TooManyRequestsError)):
        return sessions.finish_login(session=session, deps=deps, attempt=attempt, password=password)


@blp.route("/register")
class Register(MethodView):
    """Create an account."""

    @operation(blp, "register")
    @blp.arguments(RegisterSchema)
    @blp.response(202, RegistrationSchema)
    def post(self, body: dict[str, Any]) -> Registration:
        """Register; the same 202 whether or not the address is taken (a link is mailed)."""
        with unit_of_work(_session()) as session:
            return registration.register_user(session=session, deps=_deps(), **body)


def _verify_email(token: str) -> User:
    with unit_of_work(_session()) as session:
        return registration.verify_email(session=session, deps=_deps(), token=token)


@blp.route("/verify-email")
class VerifyEmail(MethodView):
    """Confirm the address with the link mailed at registration."""

    @operation(blp, "verify_email", 400, 410)
    @blp.arguments(VerifyEmailSchema)
    @blp.response(200, UserSchema)
    def post(self, body: dict[str, Any]) -> User:
        """Verify with the link's token; 400 invalid or used, 410 expired."""
        return _verify_email(body["token"])

    @operation(blp, "verify_email_link", 400, 410)
    @blp.arguments(VerifyEmailArgsSchema, location="query")
    @blp.response(200, UserSchema)
    def get(self, args: dict[str, Any]) -> User:
        """The link itself, opened from the mail; the same as the POST."""
        return _verify_email(args["token"])


@blp.route("/login")
class Login(MethodView):
    """Exchange credentials for tokens."""

    @operation(blp, "log_in", 401, 429)
    @blp.arguments(LoginSchema)
    @blp.response(200, TokenPairSchema)
    def post(self, body: dict[str, Any]) -> tuple[TokenPair, dict[str, str]]:
        """Log in; 401 for any wrong credentials, 429 when throttled."""
        pair = log_in(
            session=_session(),
            deps=_deps(),
            email=body["email"],
            password=body["password"],
            client_ip=request.remote_addr or "unknown",
        )
        return pair, NO_STORE


@blp.route("/refresh")
class Refresh(MethodView):
    """Rotate a refresh token."""

    @operation(blp, "refresh_tokens", 401)
    @blp.arguments(RefreshTokenSchema)
    @blp.response(200, TokenPairSchema)
    def post(self, body: dict[str, Any]) -> tuple[TokenPair, dict[str, str]]:
        """A new token pair for a refresh token, which stops working."""
        # 401 commits too: a re-used token's family must stay revoked.
        with unit_of_work(_session(), commit_on=(UnauthorizedError,)) as session:
            pair = sessions.refresh_tokens(
                session=session, deps=_deps(), refresh_token=body["refresh_token"]
            )
        return pair, NO_STORE


@blp.route("/logout")
class Logout(MethodView):
    """End a session."""

    @operation(blp, "log_out")
    @blp.doc(security=BEARER)
    @require_auth
    @blp.arguments(RefreshTokenSchema)
    @blp.response(204)
    def post(self, body: dict[str, Any]) -> None:
        """Revoke the refresh token (and its rotation family)."""
        with unit_of_work(_session()) as session:
            sessions.logout(
                session=session,
                deps=_deps(),
                user_id=current_principal().user_id,
                refresh_token=body["refresh_token"],
            )


@blp.route("/me")
class Me(MethodView):
    """The caller's account."""

    @operation(blp, "get_me")
    @blp.doc(security=BEARER)
    @require_auth
    @blp.response(200, UserSchema)
    def get(self) -> User:
        """The user the access token was issued to."""
        return users.get_active_user(session=_session(), user_id=current_principal().user_id)

    @operation(blp, "update_me")
    @blp.doc(security=BEARER)
    @require_auth
    @blp.arguments(ProfilePatchSchema)
    @blp.response(200, UserSchema)
    def patch(self, body: dict[str, Any]) -> User:
        """Change the caller's own profile (the name); the other services follow."""
        with unit_of_work(_session()) as session:
            return users.update_profile(
                session=session,
                deps=_deps(),
                user_id=current_principal().user_id,
                name=body["name"],
            )


def _jwks() -> tuple[dict[str, Any], dict[str, str]]:
    return _deps().keys.jwks(), JWKS_CACHE_CONTROL


@blp.route("/jwks.json")
class Jwks(MethodView):
    """Public signing keys."""

    @operation(blp, "get_jwks")
    @blp.response(200, JWKSSchema)
    def get(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Every key that may have signed a live access token."""
        return _jwks()


@well_known_blp.route("/jwks.json")
class WellKnownJwks(MethodView):
    """Public signing keys at the conventional address."""

    @operation(well_known_blp, "get_well_known_jwks")
    @well_known_blp.response(200, JWKSSchema)
    def get(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The same document as /api/v1/auth/jwks.json."""
        return _jwks()


@blp.route("/users")
class Users(MethodView):
    """User administration."""

    @operation(blp, "list_users", 403)
    @blp.doc(security=BEARER)
    @require_role("admin")
    @blp.arguments(UserQueryArgsSchema, location="query")
    @blp.response(200, UserPageSchema)
    def get(self, args: dict[str, Any]) -> UserPage:
        """Users newest first; pass `next_cursor` back as `cursor` for the next page."""
        return users.list_users(
            session=_session(),
            actor_id=current_principal().user_id,
            limit=args["limit"],
            after=args.get("cursor"),
        )


@blp.route("/users/<uuid:user_id>")
class UserById(MethodView):
    """One user, for admins."""

    @operation(blp, "update_user", 403, 409)
    @blp.doc(security=BEARER)
    @require_role("admin")
    @blp.arguments(UserPatchSchema)
    @blp.response(200, UserSchema)
    def patch(self, body: dict[str, Any], user_id: Any) -> User:
        """Change role and/or active; 409 for the last active admin."""
        with unit_of_work(_session()) as session:
            return users.update_user(
                session=session,
                deps=_deps(),
                actor_id=current_principal().user_id,
                user_id=user_id,
                role=body.get("role"),
                active=body.get("active"),
            )
