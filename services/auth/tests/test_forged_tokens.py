"""Only our own, unexpired RS256 access tokens open /me (integration)."""

from __future__ import annotations

import time

import pytest

from services.auth.tests.conftest import AUDIENCE, ISSUER, deps_of
from tests.support import (
    access_token_claims,
    key_confusion_token,
    rsa_private_key,
    sign_access_token,
    unsigned_token,
)

pytestmark = pytest.mark.integration

OTHER_KEY = rsa_private_key()


class Forger:
    """Builds tokens for a real user with one thing wrong at a time."""

    def __init__(self, app, user_id: str) -> None:
        self.key = deps_of(app).keys.signing_key()
        self.user_id = user_id

    def claims(self, **overrides):
        return access_token_claims(
            issuer=ISSUER, audience=AUDIENCE, **{"sub": self.user_id, **overrides}
        )

    def sign(self, claims=None, *, key=None, kid=None, typ="at+jwt"):
        return sign_access_token(
            claims or self.claims(), key or self.key.private_key, kid=kid or self.key.kid, typ=typ
        )

    def unsigned(self):
        return unsigned_token(self.claims(), kid=self.key.kid)

    def hs256_with_public_pem(self):
        # The classic key-confusion attack: HMAC keyed with the RSA public key's PEM text.
        return key_confusion_token(self.claims(), self.key.private_key, kid=self.key.kid)

    def tampered(self):
        # A genuine header and signature around another (also genuine) token's admin payload.
        head, _payload, signature = self.sign().split(".")
        _head, admin_payload, _signature = self.sign(self.claims(roles=["admin"])).split(".")
        return f"{head}.{admin_payload}.{signature}"


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
