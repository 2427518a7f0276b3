"""Only our own, unexpired RS256 access tokens open /me (integration)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.auth.tests.conftest import AUDIENCE, ISSUER, deps_of

pytestmark = pytest.mark.integration

OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


class Forger:
    """Builds tokens for a real user with one thing wrong at a time."""

    def __init__(self, app, user_id: str) -> None:
        self.key = deps_of(app).keys.signing_key()
        self.user_id = user_id

    def claims(self, **overrides):
        now = int(time.time())
        base = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": self.user_id,
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
            "roles": ["user"],
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def sign(self, claims=None, *, key=None, kid=None, typ="at+jwt"):
        headers = {"kid": kid or self.key.kid}
        if typ is not None:
            headers["typ"] = typ
        return jwt.encode(
            claims or self.claims(), key or self.key.private_key, algorithm="RS256", headers=headers
        )

    def unsigned(self):
        header = {"alg": "none", "typ": "at+jwt", "kid": self.key.kid}
        return f"{segment(header)}.{segment(self.claims())}."

    def hs256_with_public_pem(self):
        # The classic key-confusion attack: HMAC keyed with the RSA public key's PEM text.
        pem = self.key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "HS256", "typ": "at+jwt", "kid": self.key.kid}
        signing_input = f"{segment(header)}.{segment(self.claims())}"
        signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(signature)}"

    def tampered(self):
        head, _payload, signature = self.sign().split(".")
        return f"{head}.{segment(self.claims(roles=['admin']))}.{signature}"


FORGERIES = {
    "alg none": lambda f, _t: f.unsigned(),
    "HS256 keyed with the public key PEM": lambda f, _t: f.hs256_with_public_pem(),
    "expired": lambda f, _t: f.sign(
        f.claims(iat=int(time.time()) - 3600, exp=int(time.time()) - 1800)
    ),
    "wrong audience": lambda f, _t: f.sign(f.claims(aud="another-suite")),
    "wrong issuer": lambda f, _t: f.sign(f.claims(iss="https://evil.example")),
    "unknown kid": lambda f, _t: f.sign(kid="not-a-published-kid"),
    "another RSA key with our kid": lambda f, _t: f.sign(key=OTHER_KEY),
    "refresh token as access token": lambda _f, tokens: tokens["refresh_token"],
    "tampered payload": lambda f, _t: f.tampered(),
    "not an access token (typ JWT)": lambda f, _t: f.sign(typ="JWT"),
    "no typ": lambda f, _t: f.sign(typ=None),
    "garbage": lambda _f, _t: "not.a.token",
}
for _claim in ("exp", "iat", "iss", "aud", "sub", "jti"):
    FORGERIES[f"missing {_claim}"] = lambda f, _t, c=_claim: f.sign(f.claims(**{c: None}))


@pytest.fixture
def victim(auth, pg_app):
    tokens = auth.signup()
    return Forger(pg_app, tokens["user"]["id"]), tokens


def test_the_genuine_tokens_are_accepted(auth, victim):
    forger, tokens = victim
    assert auth.me(tokens["access_token"]).status_code == 200
    assert auth.me(forger.sign()).status_code == 200  # the forger's baseline is valid


@pytest.mark.parametrize("forgery", list(FORGERIES), ids=list(FORGERIES))
def test_a_forged_token_gets_401_on_me(auth, victim, forgery):
    forger, tokens = victim
    response = auth.me(FORGERIES[forgery](forger, tokens))
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
