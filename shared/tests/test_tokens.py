"""Token verification: only our own RS256 access tokens with every required claim get through."""

import time
import uuid

import pytest

from shared.errors import UnauthorizedError
from shared.testing import (
    access_token_claims,
    key_confusion_token,
    rsa_jwk,
    rsa_private_key,
    sign_access_token,
    unsigned_token,
)
from shared.tokens import JWKSCache, StaticKeySource, TokenVerifier

ISSUER, AUDIENCE = "https://auth.test", "suite"

KEY = rsa_private_key()
OTHER_KEY = rsa_private_key()


def claims(**overrides):
    return access_token_claims(issuer=ISSUER, audience=AUDIENCE, **overrides)


def sign(payload, key=KEY, kid="k1", typ="at+jwt"):
    return sign_access_token(payload, key, kid=kid, typ=typ)


@pytest.fixture
def verifier():
    return TokenVerifier(
        StaticKeySource({"keys": [rsa_jwk(KEY, "k1")]}), issuer=ISSUER, audience=AUDIENCE
    )


def test_a_valid_access_token_yields_its_principal(verifier):
    principal = verifier.verify(sign(claims(roles=["admin"])))
    assert principal.user_id == "user-1"
    assert principal.is_admin


FORGED = {
    "alg none": lambda: unsigned_token(claims(), kid="k1"),
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
    token = key_confusion_token(claims(), KEY, kid="k1")
    with pytest.raises(UnauthorizedError):
        verifier.verify(token)


def test_revoked_principals_are_refused():
    verifier = TokenVerifier(
        StaticKeySource({"keys": [rsa_jwk(KEY, "k1")]}),
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
    session = FakeSession({"keys": [rsa_jwk(KEY, "k1")]})
    cache = JWKSCache("http://auth/jwks.json", min_refetch_seconds=10, session=session)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    verifier.verify(sign(claims()))
    for _ in range(100):
        with pytest.raises(UnauthorizedError):
            verifier.verify(sign(claims(), kid=uuid.uuid4().hex))
    assert session.calls == 1


def test_a_rotated_in_key_is_picked_up_once_the_interval_has_passed():
    session = FakeSession({"keys": [rsa_jwk(KEY, "k1")]})
    cache = JWKSCache("http://auth/jwks.json", min_refetch_seconds=0, session=session)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    verifier.verify(sign(claims()))
    session.document = {"keys": [rsa_jwk(KEY, "k1"), rsa_jwk(OTHER_KEY, "k2")]}
    assert verifier.verify(sign(claims(), key=OTHER_KEY, kid="k2")).user_id == "user-1"
    assert session.calls == 2


class CountingKeys(StaticKeySource):
    """Counts key look-ups: one per full signature check."""

    lookups = 0

    def get_key(self, kid):
        self.lookups += 1
        return super().get_key(kid)


def test_a_token_that_verified_once_is_not_checked_again_until_it_expires(monkeypatch):
    keys = CountingKeys({"keys": [rsa_jwk(KEY, "k1")]})
    revoked: set[str] = set()
    verifier = TokenVerifier(
        keys, issuer=ISSUER, audience=AUDIENCE, is_revoked=lambda p: p.user_id in revoked
    )
    token = sign(claims(exp=int(time.time()) + 60))
    for _ in range(5):
        verifier.verify(token)
    assert keys.lookups == 1

    revoked.add("user-1")  # revocation is asked on every call, cached or not
    with pytest.raises(UnauthorizedError, match="revoked"):
        verifier.verify(token)

    revoked.clear()
    past_expiry = time.time() + 60 + 31  # exp plus the leeway
    monkeypatch.setattr(time, "time", lambda: past_expiry)
    verifier.verify(token)  # (PyJWT's own clock is not moved: the token still verifies)
    assert keys.lookups == 2  # the remembered result did not outlive the token
