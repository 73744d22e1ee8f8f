"""Placeholder secrets (an example file's "change-me..." values) are refused outside development, naming the
variable to change; real secrets and development pass."""

import logging

import pytest

from titanium_common.db import DatabaseSettings
from titanium_common.runner import EXIT_CONFIG, refuse_placeholder_secrets


class SecretSettings(DatabaseSettings):
    jwt_secret: str = ""
    admin_password: str = ""
    collector_tokens: str = ""
    redis_url: str = ""


REAL = "9f2c41d0b7a8e6f3c5d4b2a1908e7f6d"


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("jwt_secret", "change-me-to-32-or-more-random-characters", "JWT_SECRET"),
        ("admin_password", "change-me-admin-password", "ADMIN_PASSWORD"),
        ("admin_password", "changethis", "ADMIN_PASSWORD"),
        ("collector_tokens", f"{REAL},Change_Me", "COLLECTOR_TOKENS"),
        ("database_url", "postgresql://titanium:changeme0123456789@postgres:5432/titanium", "DATABASE_URL"),
        ("redis_url", "redis://:changeme@redis:6379/0", "REDIS_URL"),
    ],
)
def test_a_placeholder_in_a_secret_setting_is_found_and_named(setting, value, named):
    (problem,) = SecretSettings(env="production", **{setting: value}).placeholder_secrets()
    assert named in problem
    assert value not in problem, "the log line must not repeat the value"


def test_the_database_password_names_the_compose_variable():
    settings = SecretSettings(database_url="postgresql://u:changeme0123456789@db:5432/d")
    assert "POSTGRES_PASSWORD" in settings.placeholder_secrets()[0]


def test_real_secrets_and_settings_that_are_not_secrets_pass():
    settings = SecretSettings(
        service_name="change-me-service",
        jwt_secret=REAL,
        admin_password="correct horse battery staple",
        database_url=f"postgresql://titanium:{REAL}@postgres:5432/changeme",
        redis_url="redis://redis:6379/0",
    )
    assert settings.placeholder_secrets() == []


def test_outside_development_the_process_refuses_with_a_log_line_naming_the_variable(caplog):
    settings = SecretSettings(env="production", jwt_secret="change-me-to-32-or-more-random-characters")
    with caplog.at_level(logging.CRITICAL, logger="titanium.runner"), pytest.raises(SystemExit) as exited:
        refuse_placeholder_secrets(settings)
    assert exited.value.code == EXIT_CONFIG
    assert [r.getMessage() for r in caplog.records] == [
        "refusing to start: JWT_SECRET is still the example's placeholder: set a secret of your own"
    ]


def test_development_only_warns(caplog):
    settings = SecretSettings(env="development", admin_password="changeme")
    with caplog.at_level(logging.WARNING, logger="titanium.runner"):
        refuse_placeholder_secrets(settings)
    assert "ADMIN_PASSWORD" in caplog.records[0].getMessage() and caplog.records[0].levelname == "WARNING"
