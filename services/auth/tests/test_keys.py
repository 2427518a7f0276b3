"""Signing keys: RFC 7638 kids, creation, rotation and the key ring (unit)."""

from __future__ import annotations

import stat

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.auth.keys import (
    KeyRing,
    SigningKeyError,
    ensure_key,
    key_files,
    load_keys,
    rotate_key,
    thumbprint,
)


def test_kid_is_the_rfc_7638_thumbprint():
    # The worked example of RFC 7638, section 3.1.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhD"
            "R1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6C"
            "f0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1"
            "n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1"
            "jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_ensure_key_creates_one_private_key_and_then_reuses_it(tmp_path):
    directory = tmp_path / "keys"
    first = ensure_key(directory)
    again = ensure_key(directory)
    assert first.kid == again.kid
    (path,) = key_files(directory)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert first.private_key.key_size >= 2048


def test_rotation_adds_a_newer_key_that_signs_while_all_stay_published(tmp_path):
    ring = KeyRing(tmp_path, reload_seconds=0)
    old = ensure_key(tmp_path)
    new = rotate_key(tmp_path)
    ring.load()
    assert ring.signing_key().kid == new.kid != old.kid
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old.kid, new.kid}
    assert ring.get_key(old.kid) is not None and ring.get_key(new.kid) is not None
    assert ring.get_key("nope") is None


def test_the_ring_notices_a_rotation_after_its_reload_interval(tmp_path):
    now = [0.0]
    ring = KeyRing(tmp_path, reload_seconds=10, clock=lambda: now[0])
    first = ensure_key(tmp_path)
    ring.load()
    second = rotate_key(tmp_path)
    now[0] = 5
    assert ring.signing_key().kid == first.kid  # not checked yet
    now[0] = 11
    assert ring.signing_key().kid == second.kid


def test_published_jwks_verify_tokens_of_that_key(tmp_path):
    key = ensure_key(tmp_path)
    ring = KeyRing(tmp_path).load()
    token = jwt.encode({"sub": "x"}, key.private_key, algorithm="RS256")
    public = ring.get_key(key.kid)
    assert public is not None
    assert jwt.decode(token, public.key, algorithms=["RS256"]) == {"sub": "x"}
    (jwk,) = ring.jwks()["keys"]
    assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}  # nothing private


def test_an_empty_ring_cannot_sign(tmp_path):
    ring = KeyRing(tmp_path / "none").load()
    with pytest.raises(SigningKeyError, match="keys ensure"):
        ring.signing_key()
    assert ring.jwks() == {"keys": []}


def _write(path, private_key):
    path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_keys_that_cannot_sign_rs256_safely_are_refused(tmp_path):
    _write(tmp_path / "a.pem", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(SigningKeyError, match="only RSA"):
        load_keys(tmp_path)
    (tmp_path / "a.pem").unlink()
    _write(tmp_path / "b.pem", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(SigningKeyError, match="2048"):
        load_keys(tmp_path)
    (tmp_path / "b.pem").write_text("garbage")
    with pytest.raises(SigningKeyError, match="PEM"):
        load_keys(tmp_path)


def test_a_broken_file_after_start_up_keeps_the_loaded_keys(tmp_path):
    key = ensure_key(tmp_path)
    ring = KeyRing(tmp_path, reload_seconds=0).load()
    (tmp_path / "zzz.pem").write_text("garbage")
    assert ring.signing_key().kid == key.kid
