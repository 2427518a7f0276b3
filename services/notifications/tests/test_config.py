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
