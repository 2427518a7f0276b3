"""Token verification: only our own RS256 access tokens with every required claim get through."""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from shared.errors import UnauthorizedError
from shared.tokens import JWKSCache, StaticKeySource, TokenVerifier
from tests.support import (
    access_token_claims,
    key_confusion_token,
    rsa_jwk,
    rsa_private_key,
    sign_access_token,
    unsigned_token,
)

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


def test_a_token_issued_for_longer_than_the_maximum_lifetime_is_refused(verifier):
    now = int(time.time())
    # Signed with our own key and not expired: only its lifetime is wrong (a day).
    day_long = sign(claims(iat=now, exp=now + 24 * 3600))
    with pytest.raises(UnauthorizedError, match="lifetime exceeds the maximum"):
        verifier.verify(day_long)
    assert verifier.verify(sign(claims(iat=now, exp=now + 900))).user_id == "user-1"


def test_the_maximum_lifetime_is_configurable():
    verifier = TokenVerifier(
        StaticKeySource({"keys": [rsa_jwk(KEY, "k1")]}),
        issuer=ISSUER,
        audience=AUDIENCE,
        max_lifetime=300,
    )
    now = int(time.time())
    with pytest.raises(UnauthorizedError):
        verifier.verify(sign(claims(iat=now, exp=now + 301)))
    assert verifier.verify(sign(claims(iat=now, exp=now + 300))).user_id == "user-1"


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


def test_a_token_that_verified_once_is_not_checked_again_until_it_expires(monkeypatch):
    decode = jwt.decode
    signature_checks = []

    def counting_decode(*args, **kwargs):
        signature_checks.append(1)
        return decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    revoked: set[str] = set()
    verifier = TokenVerifier(
        StaticKeySource({"keys": [rsa_jwk(KEY, "k1")]}),
        issuer=ISSUER,
        audience=AUDIENCE,
        is_revoked=lambda p: p.user_id in revoked,
    )
    token = sign(claims(exp=int(time.time()) + 60))
    for _ in range(5):
        verifier.verify(token)
    assert len(signature_checks) == 1

    revoked.add("user-1")  # revocation is asked on every call, cached or not
    with pytest.raises(UnauthorizedError, match="revoked"):
        verifier.verify(token)

    revoked.clear()
    past_expiry = time.time() + 60 + 31  # exp plus the leeway
    monkeypatch.setattr(time, "time", lambda: past_expiry)
    verifier.verify(token)  # (PyJWT's own clock is not moved: the token still verifies)
    assert len(signature_checks) == 2  # the remembered result did not outlive the token


@pytest.mark.parametrize(
    "subject",
    ["u" * 65, "user\x00one", "user one", "user\tone", "us\u00e9r", "", 42],
    ids=["65 characters", "NUL", "space", "tab", "not ASCII", "empty", "not a string"],
)
def test_a_signed_token_whose_subject_is_no_user_id_is_refused(verifier, subject):
    with pytest.raises(UnauthorizedError) as caught:
        verifier.verify(sign(claims(sub=subject)))
    assert "invalid_token" in caught.value.headers["WWW-Authenticate"]


def test_a_subject_of_64_printable_characters_is_a_user_id(verifier):
    subject = "0123456789abcdef-ABCDEF:._@" + "x" * 37
    assert verifier.verify(sign(claims(sub=subject))).user_id == subject


# -- keys withdrawn from a JWKS served over HTTP ------------------------------------------------


class JWKSServer:
    """A JWKS document served over HTTP on a free local port; tests change `document`."""

    def __init__(self, document):
        self.document = document
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


NEW_KEY = rsa_private_key()


@pytest.fixture
def jwks_server():
    server = JWKSServer({"keys": [rsa_jwk(KEY, "k1"), rsa_jwk(OTHER_KEY, "k2")]})
    yield server
    server.close()


def test_tokens_of_a_key_withdrawn_from_the_jwks_fail_once_the_set_is_refetched(jwks_server):
    cache = JWKSCache(jwks_server.url, min_refetch_seconds=0)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    old = sign(claims(), kid="k1")
    assert verifier.verify(old).user_id == "user-1"

    jwks_server.document = {"keys": [rsa_jwk(OTHER_KEY, "k2"), rsa_jwk(NEW_KEY, "k3")]}
    # The first token of the new key makes the cache fetch the set again.
    verifier.verify(sign(claims(), key=NEW_KEY, kid="k3"))
    assert cache.fetch_count == 2

    with pytest.raises(UnauthorizedError, match="unknown signing key"):
        verifier.verify(old)
    assert verifier.verify(sign(claims(), key=OTHER_KEY, kid="k2")).user_id == "user-1"


def test_a_periodic_refresh_that_drops_a_key_ends_its_remembered_tokens(jwks_server):
    # max_age 0: every look-up is a refresh, as the hourly one is in production.
    cache = JWKSCache(jwks_server.url, min_refetch_seconds=0, max_age_seconds=0)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    old = sign(claims(), kid="k1")
    verifier.verify(old)

    jwks_server.document = {"keys": [rsa_jwk(OTHER_KEY, "k2")]}
    with pytest.raises(UnauthorizedError, match="unknown signing key"):
        verifier.verify(old)


def test_a_kid_published_again_with_another_key_no_longer_verifies_old_tokens(jwks_server):
    cache = JWKSCache(jwks_server.url, min_refetch_seconds=0, max_age_seconds=0)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    old = sign(claims(), kid="k1")
    verifier.verify(old)

    jwks_server.document = {"keys": [rsa_jwk(NEW_KEY, "k1")]}
    with pytest.raises(UnauthorizedError, match="invalid token"):
        verifier.verify(old)


def test_remembered_tokens_stay_valid_while_the_jwks_cannot_be_fetched(jwks_server):
    cache = JWKSCache(jwks_server.url, min_refetch_seconds=0, max_age_seconds=0)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE)
    token = sign(claims())
    verifier.verify(token)

    jwks_server.close()  # auth is down: the keys we have keep serving
    assert verifier.verify(token).user_id == "user-1"
