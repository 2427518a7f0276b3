"""Configuration: embedded defaults only in the local run; secrets never default elsewhere."""

import pytest

from shared.config import ConfigError, Env, common_config


def test_local_run_gets_sqlite_and_the_local_broker(tmp_path):
    env = Env({"APP_ENV": "local", "VAR_DIR": str(tmp_path)})
    config = common_config("orders", env)
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'orders.db'}"
    assert config["AMQP_URL"].startswith("amqp://guest:guest@127.0.0.1:5672")


def test_production_refuses_to_start_without_a_database_url():
    env = Env({"AMQP_URL": "amqp://suite:s3cr3t-value@rabbit:5672/%2F"})
    with pytest.raises(ConfigError, match="ORDERS_DATABASE_URL must be set"):
        common_config("orders", env)


@pytest.mark.parametrize("password", ["changeme", "password", "secret"])
def test_production_refuses_placeholder_passwords_in_urls(password):
    env = Env(
        {
            "ORDERS_DATABASE_URL": f"postgresql://orders:{password}@db/orders",
            "AMQP_URL": "amqp://suite:s3cr3t-value@rabbit:5672/%2F",
        }
    )
    with pytest.raises(ConfigError, match="placeholder"):
        common_config("orders", env)


def test_production_refuses_the_brokers_guest_account():
    env = Env(
        {
            "ORDERS_DATABASE_URL": "postgresql://o:Str0ng-pw@db/o",
            "AMQP_URL": "amqp://guest:guest@r/",
        }
    )
    with pytest.raises(ConfigError, match="guest"):
        common_config("orders", env)


def test_secret_settings_have_no_default_outside_the_local_run():
    with pytest.raises(ConfigError):
        Env({}).string("SOME_SECRET", "dev-default", secret=True)
    assert (
        Env({"APP_ENV": "local"}).string("SOME_SECRET", "dev-default", secret=True) == "dev-default"
    )


@pytest.mark.parametrize(
    ("getter", "raw"), [("integer", "ten"), ("number", "fast"), ("flag", "maybe")]
)
def test_malformed_values_are_named_in_the_error(getter, raw):
    with pytest.raises(ConfigError, match="SETTING"):
        getattr(Env({"SETTING": raw}), getter)("SETTING", 1)


def test_a_token_lifetime_longer_than_the_revocation_window_is_refused():
    from shared.config import validate_token_lifetimes

    config = common_config(
        "orders",
        Env(
            {
                "APP_ENV": "test",
                "AUTH_ACCESS_TOKEN_TTL_SECONDS": str(24 * 3600),
                "GATEWAY_REVOCATION_TTL_SECONDS": str(17 * 60),
            }
        ),
    )
    with pytest.raises(ConfigError, match="at least 86430"):
        validate_token_lifetimes(config)
    default = common_config("orders", Env({"APP_ENV": "test"}))
    validate_token_lifetimes(default)
    assert default["GATEWAY_REVOCATION_TTL_SECONDS"] == 17 * 60
