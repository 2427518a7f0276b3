"""The notifications service's settings refuse what would fail later or leak."""

import pytest

from services.notifications.config import notifications_config, validate_config
from shared.config import ConfigError, Env


def test_a_placeholder_smtp_password_is_refused_outside_the_local_run():
    env = Env({"SMTP_USERNAME": "mailer", "SMTP_PASSWORD": "changeme"})
    with pytest.raises(ConfigError, match="SMTP_PASSWORD"):
        notifications_config(env)


def test_a_real_smtp_password_is_taken():
    env = Env({"SMTP_USERNAME": "mailer", "SMTP_PASSWORD": "k7#Qv9!pLr2"})
    assert notifications_config(env)["SMTP_PASSWORD"] == "k7#Qv9!pLr2"


def test_a_lease_shorter_than_two_sends_is_refused():
    config = notifications_config(Env({"NOTIFICATIONS_DELIVERY_LEASE_SECONDS": "40"}))
    with pytest.raises(ConfigError, match="NOTIFICATIONS_DELIVERY_LEASE_SECONDS"):
        validate_config(config)  # SMTP_TIMEOUT_SECONDS is 30: one mail could outlast it


def test_the_retentions_default_to_30_days_of_deliveries_and_a_year_of_notifications():
    config = notifications_config(Env({}))
    validate_config(config)
    assert config["DELIVERY_RETENTION_SECONDS"] == 30 * 24 * 3600
    assert config["NOTIFICATION_RETENTION_SECONDS"] == 365 * 24 * 3600


@pytest.mark.parametrize("name", ["DELIVERY_RETENTION_SECONDS", "NOTIFICATION_RETENTION_SECONDS"])
@pytest.mark.parametrize("value", ["0", "-3600"])
def test_a_retention_that_is_not_positive_is_refused(name, value):
    config = notifications_config(Env({name: value}))
    with pytest.raises(ConfigError, match=name):
        validate_config(config)
