"""Access-token verification for every service and the gateway.

PyJWT does the cryptography; what we add is what it leaves to the caller: an algorithm
allowlist checked before any key is chosen, the required claims, the token type, and a
JWKS cache whose refetch on an unknown `kid` is rate-limited (PyJWKClient refetches on
every miss, which lets forged `kid`s turn each request into a call to auth).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import jwt
import requests
from flask import Flask, current_app, g, request

from shared.config import DEFAULT_ACCESS_TOKEN_TTL, TOKEN_LEEWAY_SECONDS
from shared.errors import ForbiddenError, UnauthorizedError

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = ("RS256",)
ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub", "jti")
LEEWAY_SECONDS = TOKEN_LEEWAY_SECONDS
# The subject becomes a user id in every service's tables (String(64) columns); auth issues
# UUIDs. Printable ASCII without spaces, so it is also safe in logs and headers.
SUBJECT_PATTERN = re.compile(r"\A[\x21-\x7e]{1,64}\Z")


@dataclass(frozen=True)
class Principal:
    """The verified caller of a request."""

    user_id: str
    roles: tuple[str, ...]
    token_id: str
    expires_at: int
    # Fractional seconds when the issuer gives them (RFC 7519 allows it): the gateway then
    # tells a token issued just after a role change from one issued just before it.
    issued_at: float

    @property
    def is_admin(self) -> bool:
        """True for callers holding the admin role."""
        return "admin" in self.roles


class KeySource(Protocol):
    """Finds the public key for a `kid`, or None."""

    def get_key(self, kid: str) -> jwt.PyJWK | None: ...


def _parse_jwks(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document.get("keys", []):
        if not isinstance(entry, dict) or "kid" not in entry:
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg") not in ALLOWED_ALGORITHMS:
            continue
        try:
            keys[str(entry["kid"])] = jwt.PyJWK(entry)
        except jwt.PyJWKError:
            log.warning("ignoring unusable JWK", extra={"kid": entry.get("kid")})
    return keys


class StaticKeySource:
    """Keys known in-process (the auth service verifying its own tokens, tests)."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = _parse_jwks(jwks)

    def get_key(self, kid: str) -> jwt.PyJWK | None:
        """The key for `kid`, if published."""
        return self._keys.get(kid)


class JWKSCache:
    """JWKS fetched over HTTP and cached; an unknown `kid` refetches at most every N seconds."""

    def __init__(
        self,
        url: str,
        *,
        min_refetch_seconds: float = 10.0,
        max_age_seconds: float = 3600.0,
        timeout: float = 3.0,
        session: requests.Session | None = None,
    ) -> None:
        self.url = url
        self.min_refetch_seconds = min_refetch_seconds
        self.max_age_seconds = max_age_seconds
        self.timeout = timeout
        self.session = session or requests.Session()
        self.fetch_count = 0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = threading.Lock()

    def get_key(self, kid: str) -> jwt.PyJWK | None:
        """The key for `kid`, refetching the set when it is unknown or stale (rate-limited)."""
        now = time.monotonic()
        key = self._keys.get(kid)
        stale = now - self._fetched_at > self.max_age_seconds
        if key is not None and not stale:
            return key
        with self._lock:
            key = self._keys.get(kid)
            now = time.monotonic()
            stale = now - self._fetched_at > self.max_age_seconds
            if (key is None or stale) and now - self._attempted_at >= self.min_refetch_seconds:
                self._refresh(now)
                key = self._keys.get(kid)
        return key

    def loaded(self) -> bool:
        """Whether a key set is at hand; while none is, fetch one (rate-limited like a miss)."""
        if self._fetched_at == float("-inf"):
            with self._lock:
                now = time.monotonic()
                never = self._fetched_at == float("-inf")
                if never and now - self._attempted_at >= self.min_refetch_seconds:
                    self._refresh(now)
        return self._fetched_at != float("-inf")

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        self.fetch_count += 1
        try:
            response = self.session.get(self.url, timeout=self.timeout)
            response.raise_for_status()
            self._keys = _parse_jwks(response.json())
            self._fetched_at = now
        except (requests.RequestException, ValueError) as exc:
            # Keep serving the keys we have; an auth outage must not log everyone out.
            log.warning("JWKS fetch failed", extra={"url": self.url, "error": str(exc)})


class TokenVerifier:
    """Verifies RS256 access tokens: allowlisted alg, known kid, required claims, type.

    A token that verified once is remembered until it expires: a client sends the same
    token for 15 minutes, and the RSA check and claim parsing were about a tenth of a
    service's CPU per request in the benchmark. Revocation is still asked every time, and
    so is the key source, for the key that signed it: once a refreshed key set no longer
    publishes that key (or publishes another under its `kid`), the token is checked again
    in full, and refused when its key was withdrawn.
    """

    CACHE_SIZE = 10_000

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        is_revoked: Callable[[Principal], bool] | None = None,
        max_lifetime: int = DEFAULT_ACCESS_TOKEN_TTL,
    ) -> None:
        self.keys = keys
        # A token issued for longer than this would outlive the gateway's revocations.
        self.max_lifetime = max_lifetime
        self.issuer = issuer
        self.audience = audience
        self.is_revoked = is_revoked
        # token -> (its principal, the kid and the key object that verified it)
        self._verified: dict[str, tuple[Principal, str, jwt.PyJWK]] = {}

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid access token or raise UnauthorizedError."""
        cached = self._verified.get(token)
        if cached is not None and not self._still_valid(*cached):
            cached = None
        if cached is None:
            cached = self._verify_signature_and_claims(token)
            if len(self._verified) >= self.CACHE_SIZE:
                # Dropping all at once keeps this lock-free and bounded; misses are cheap.
                self._verified.clear()
            self._verified[token] = cached
        principal = cached[0]
        if self.is_revoked is not None and self.is_revoked(principal):
            raise _invalid("token revoked")
        return principal

    def _still_valid(self, principal: Principal, kid: str, key: jwt.PyJWK) -> bool:
        if principal.expires_at + LEEWAY_SECONDS <= time.time():
            return False
        # Key sources build new key objects whenever they reload the set: the same object
        # means the same published key, anything else is a full check again.
        return self.keys.get_key(kid) is key

    def _verify_signature_and_claims(self, token: str) -> tuple[Principal, str, jwt.PyJWK]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _invalid("malformed token") from None
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise _invalid("algorithm not allowed")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise _invalid("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("token has no key id")
        key = self.keys.get_key(kid)
        if key is None:
            raise _invalid("unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise _invalid(f"invalid token: {exc}") from None
        issued_at, expires_at = claims["iat"], claims["exp"]
        if not isinstance(issued_at, int | float) or not isinstance(expires_at, int | float):
            raise _invalid("iat and exp must be numbers")
        if expires_at - issued_at > self.max_lifetime:
            raise _invalid("token lifetime exceeds the maximum")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise _invalid("roles claim must be a list of strings")
        subject = claims["sub"]
        if not isinstance(subject, str) or not SUBJECT_PATTERN.match(subject):
            raise _invalid("sub must be 1 to 64 printable ASCII characters without spaces")
        principal = Principal(
            user_id=subject,
            roles=tuple(roles),
            token_id=str(claims["jti"]),
            expires_at=int(expires_at),
            issued_at=float(issued_at),
        )
        return principal, kid, key


def _invalid(detail: str) -> UnauthorizedError:
    return UnauthorizedError(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header, or UnauthorizedError."""
    if not authorization:
        raise UnauthorizedError("Authentication required.", headers={"WWW-Authenticate": "Bearer"})
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _invalid("expected a Bearer token")
    return token.strip()


def init_app(app: Flask, verifier: TokenVerifier) -> None:
    """Attach a verifier to an app (tests swap `app.extensions["token_verifier"]`)."""
    app.extensions["token_verifier"] = verifier


def authenticate() -> Principal:
    """Verify this request's bearer token once and remember the principal on `g`."""
    principal = g.get("principal")
    if principal is None:
        verifier: TokenVerifier = current_app.extensions["token_verifier"]
        principal = verifier.verify(bearer_token(request.headers.get("Authorization")))
        g.principal = principal
    return cast(Principal, principal)


F = TypeVar("F", bound=Callable[..., Any])


def require_auth(func: F) -> F:
    """View decorator: the request must carry a valid access token."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticate()
        return func(*args, **kwargs)

    return cast(F, wrapper)


def require_role(*roles: str) -> Callable[[F], F]:
    """View decorator: a valid token holding at least one of `roles` (403 otherwise)."""
    wanted: Iterable[str] = frozenset(roles)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if not wanted & set(principal.roles):  # type: ignore[operator]
                raise ForbiddenError("This action needs the role: " + ", ".join(sorted(roles)))
            return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def current_principal() -> Principal:
    """The principal of the current request (call inside a `require_auth` view)."""
    return authenticate()
