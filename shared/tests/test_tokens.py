"""Token verification: only our own RS256 access tokens with every required claim get through."""

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.errors import UnauthorizedError
from shared.tokens import JWKSCache, StaticKeySource, TokenVerifier

ISSUER, AUDIENCE = "https://auth.test", "suite"


def make_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = make_key()
OTHER_KEY = make_key()


def jwk_of(private_key, kid):
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def claims(**overrides):
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "roles": ["user"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload, key=KEY, kid="k1", typ="at+jwt", alg="RS256"):
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": typ})


@pytest.fixture
def verifier():
    return TokenVerifier(
        StaticKeySource({"keys": [jwk_of(KEY, "k1")]}), issuer=ISSUER, audience=AUDIENCE
    )


def test_a_valid_access_token_yields_its_principal(verifier):
    principal = verifier.verify(sign(claims(roles=["admin"])))
    assert principal.user_id == "user-1"
    assert principal.is_admin


def public_pem():
    return KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def unsigned(payload):
    header = {"alg": "none", "typ": "at+jwt", "kid": "k1"}
    return jwt.api_jws.PyJWS(algorithms=["none"]).encode(
        json.dumps(payload).encode(), key=None, algorithm="none", headers=header
    )


FORGED = {
    "alg none": lambda: unsigned(claims()),
    "expired": lambda: sign(claims(iat=int(time.time()) - 4000, exp=int(time.time()) - 3600)),
    "other audience": lambda: sign(claims(aud="someone-else")),
    "other issuer": lambda: sign(claims(iss="https://evil.test")),
    "no exp": lambda: sign(claims(exp=None)),
    "no iat": lambda: sign(claims(iat=None)),
    "no sub": lambda: sign(claims(sub=None)),
    "no jti": lambda: sign(claims(jti=None)),
    "no aud": lambda: sign(claims(aud=None)),
    "no iss": lambda: sign(claims(iss=None)),
    "unknown kid": lambda: sign(claims(), kid="k9"),
    "other key, same kid": lambda: sign(claims(), key=OTHER_KEY),
    "not an access token": lambda: sign(claims(), typ="refresh+jwt"),
    "roles not a list": lambda: sign(claims(roles="admin")),
    "garbage": lambda: "not.a.token",
    "opaque refresh token": lambda: "x7Jd3k0aQ1b2c3d4e5f6g7h8i9j0kLmNoPqRsTuVwXy",
}


@pytest.mark.parametrize("forgery", sorted(FORGED))
def test_forged_tokens_are_refused(verifier, forgery):
    with pytest.raises(UnauthorizedError) as caught:
        verifier.verify(FORGED[forgery]())
    assert "invalid_token" in caught.value.headers["WWW-Authenticate"]


def test_hs256_signed_with_the_public_key_is_refused(verifier):
    # The classic confusion attack: the public key used as an HMAC secret.
    # Signed by hand: PyJWT itself refuses to HMAC with a PEM key.
    token = _hs256_with(public_pem(), claims())
    with pytest.raises(UnauthorizedError):
        verifier.verify(token)


def _hs256_with(secret: bytes, payload: dict) -> str:
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}).encode())
    body = b64(json.dumps(payload).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


def test_revoked_principals_are_refused():
    verifier = TokenVerifier(
        StaticKeySource({"keys": [jwk_of(KEY, "k1")]}),
        issuer=ISSUER,
        audience=AUDIENCE,
        is_revoked=lambda principal: principal.user_id == "user-1",
    )
    with pytest.raises(UnauthorizedError, match="revoked"):
        verifier.verify(sign(claims()))


class FakeResponse:
    def __init__(self, document):
        self.document = document

    def raise_for_status(self):
        return None

    def json(self):
        return self.document


class FakeSession:
    """Counts fetches of the JWKS document (a fake of the HTTP client, not of a server)."""

    def __init__(self, document):
        self.document = document
        self.calls = 0

    def get(self, url, timeout):
        self.calls += 1
        return FakeResponse(self.document)


def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval():
    session = FakeSession({"keys": [jwk_of(KEY, "k1")]})
    cache = JWKSCache("http://auth/jwks.json", min_refetch_seconds=10, session=session)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    verifier.verify(sign(claims()))
    for _ in range(100):
        with pytest.raises(UnauthorizedError):
            verifier.verify(sign(claims(), kid=uuid.uuid4().hex))
    assert session.calls == 1


def test_a_rotated_in_key_is_picked_up_once_the_interval_has_passed():
    session = FakeSession({"keys": [jwk_of(KEY, "k1")]})
    cache = JWKSCache("http://auth/jwks.json", min_refetch_seconds=0, session=session)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    verifier.verify(sign(claims()))
    session.document = {"keys": [jwk_of(KEY, "k1"), jwk_of(OTHER_KEY, "k2")]}
    assert verifier.verify(sign(claims(), key=OTHER_KEY, kid="k2")).user_id == "user-1"
    assert session.calls == 2
