"""Signing-key rotation keeps earlier tokens valid (integration)."""

from __future__ import annotations

import jwt
import pytest

from services.auth.tests.conftest import AUDIENCE, ISSUER, AuthActions, dispose, make_app
from shared.tokens import StaticKeySource, TokenVerifier

pytestmark = pytest.mark.integration


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


@pytest.fixture
def app(pg_app, pg_url, amqp_url, tmp_path):
    """An app on the session database with its own key directory, so rotation stays here."""
    app = make_app(pg_url, tmp_path / "keys", amqp_url=amqp_url)
    yield app
    dispose(app)


def test_tokens_of_the_older_key_verify_after_rotation_and_new_ones_use_the_new_kid(app):
    auth = AuthActions(app.test_client())
    before = auth.signup()
    old_kid = kid_of(before["access_token"])

    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output

    after = auth.tokens()
    new_kid = kid_of(after["access_token"])
    assert new_kid != old_kid
    assert auth.me(before["access_token"]).status_code == 200
    assert auth.me(after["access_token"]).status_code == 200
    assert kid_of(auth.refresh(before["refresh_token"]).get_json()["access_token"]) == new_kid

    jwks = auth.client.get("/api/v1/auth/jwks.json").get_json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    # Any other verifier that fetched the published set accepts both generations too.
    remote = TokenVerifier(StaticKeySource(jwks), issuer=ISSUER, audience=AUDIENCE)
    assert remote.verify(before["access_token"]).user_id == before["user"]["id"]
    assert remote.verify(after["access_token"]).user_id == before["user"]["id"]
