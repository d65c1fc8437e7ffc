"""Settings from TELEMETRY_* environment variables, and the errors bad values give."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from local_telemetry.config import (
    ConfigurationError,
    Settings,
    describe_settings,
    load_settings,
    parse_git_hosts,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TELEMETRY_* variable from the outer environment leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("TELEMETRY_"):
            monkeypatch.delenv(name)


def test_defaults_without_any_variable() -> None:
    settings = load_settings()
    assert settings.db_path == Path("data/telemetry.sqlite")
    assert settings.database_url is None
    assert settings.api_host == "127.0.0.1"
    assert settings.api_port == 8765
    assert settings.api_workers == 1
    assert settings.db_journal_mode == "WAL"
    assert settings.db_synchronous == "FULL"
    assert settings.api_auth_enabled is False
    assert settings.api_auth_token is None
    assert settings.rate_limit_enabled is False
    assert settings.rate_limit_rpm == 60
    assert settings.git_host_map == {}
    assert settings.max_run_body_bytes == 1024 * 1024
    assert settings.log_level == "info"


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("TELEMETRY_DB_PATH", "/srv/t/db.sqlite", "db_path", Path("/srv/t/db.sqlite")),
        ("TELEMETRY_DATABASE_URL", "sqlite:///srv/x.db", "database_url", "sqlite:///srv/x.db"),
        ("TELEMETRY_API_HOST", "0.0.0.0", "api_host", "0.0.0.0"),
        ("TELEMETRY_API_PORT", "9001", "api_port", 9001),
        ("TELEMETRY_API_WORKERS", "1", "api_workers", 1),
        ("TELEMETRY_DB_JOURNAL_MODE", "DELETE", "db_journal_mode", "DELETE"),
        ("TELEMETRY_DB_SYNCHRONOUS", "EXTRA", "db_synchronous", "EXTRA"),
        ("TELEMETRY_DB_BUSY_TIMEOUT_MS", "250", "db_busy_timeout_ms", 250),
        ("TELEMETRY_RATE_LIMIT_ENABLED", "true", "rate_limit_enabled", True),
        ("TELEMETRY_RATE_LIMIT_RPM", "5", "rate_limit_rpm", 5),
        ("TELEMETRY_GIT_HOSTS", "git.example.com=gitlab", "git_hosts", "git.example.com=gitlab"),
        ("TELEMETRY_MAX_RUN_BODY_BYTES", "2048", "max_run_body_bytes", 2048),
        ("TELEMETRY_MAX_BATCH_BODY_BYTES", "4096", "max_batch_body_bytes", 4096),
        ("TELEMETRY_MAX_BATCH_ITEMS", "7", "max_batch_items", 7),
        ("TELEMETRY_INGEST_QUEUE_SIZE", "3", "ingest_queue_size", 3),
        ("TELEMETRY_METADATA_CACHE_SECONDS", "0.5", "metadata_cache_seconds", 0.5),
        ("TELEMETRY_LOG_LEVEL", "WARNING", "log_level", "warning"),
    ],
)
def test_each_variable_sets_its_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), attribute) == expected


def test_auth_variables_enable_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_API_AUTH_ENABLED", "true")
    monkeypatch.setenv("TELEMETRY_API_AUTH_TOKEN", "s3cret")
    settings = load_settings()
    assert settings.api_auth_enabled is True
    assert settings.api_auth_token == "s3cret"


def test_every_described_variable_is_read_from_the_environment() -> None:
    names = [env for env, _, _ in describe_settings()]
    assert names == ["TELEMETRY_" + field.upper() for field in Settings.model_fields]
    assert len(set(names)) == len(names)


def test_explicit_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_API_PORT", "9001")
    assert load_settings(api_port=9100).api_port == 9100


@pytest.mark.parametrize("value", ["true", "True", "1", "yes", "on"])
def test_boolean_variables_accept_common_true_spellings(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TELEMETRY_RATE_LIMIT_ENABLED", value)
    assert load_settings().rate_limit_enabled is True


@pytest.mark.parametrize("value", ["false", "0", "no", "off"])
def test_boolean_variables_accept_common_false_spellings(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TELEMETRY_RATE_LIMIT_ENABLED", value)
    assert load_settings().rate_limit_enabled is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TELEMETRY_API_PORT", "abc"),
        ("TELEMETRY_API_PORT", "0"),
        ("TELEMETRY_API_PORT", "65536"),
        ("TELEMETRY_API_PORT", "-1"),
        ("TELEMETRY_API_WORKERS", "0"),
        ("TELEMETRY_DB_BUSY_TIMEOUT_MS", "-1"),
        ("TELEMETRY_API_AUTH_ENABLED", "maybe"),
        ("TELEMETRY_RATE_LIMIT_ENABLED", "sometimes"),
        ("TELEMETRY_RATE_LIMIT_RPM", "0"),
        ("TELEMETRY_RATE_LIMIT_RPM", "fast"),
        ("TELEMETRY_MAX_RUN_BODY_BYTES", "1023"),
        ("TELEMETRY_MAX_BATCH_BODY_BYTES", "1k"),
        ("TELEMETRY_MAX_BATCH_ITEMS", "0"),
        ("TELEMETRY_INGEST_QUEUE_SIZE", "0"),
        ("TELEMETRY_METADATA_CACHE_SECONDS", "-1"),
        ("TELEMETRY_LOG_LEVEL", "verbose"),
        ("TELEMETRY_DB_JOURNAL_MODE", "bogus"),
        ("TELEMETRY_DB_SYNCHRONOUS", "2"),
    ],
)
def test_bad_value_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings()


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_API_PORT", "abc")
    monkeypatch.setenv("TELEMETRY_RATE_LIMIT_RPM", "0")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "TELEMETRY_API_PORT" in str(info.value)
    assert "TELEMETRY_RATE_LIMIT_RPM" in str(info.value)


def test_configuration_error_is_a_value_error_not_a_raw_pydantic_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELEMETRY_API_PORT", "abc")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, ValidationError)


# ----- auth -----


@pytest.mark.parametrize("token", [None, ""])
def test_auth_enabled_without_a_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    monkeypatch.setenv("TELEMETRY_API_AUTH_ENABLED", "true")
    if token is not None:
        monkeypatch.setenv("TELEMETRY_API_AUTH_TOKEN", token)
    with pytest.raises(ConfigurationError, match="TELEMETRY_API_AUTH_TOKEN") as info:
        load_settings()
    # A cross-field problem names the real variables, with no invented prefix.
    assert str(info.value).startswith("TELEMETRY_API_AUTH_ENABLED is true")
    assert "Value error" not in str(info.value)


def test_a_token_without_auth_enabled_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_API_AUTH_TOKEN", "s3cret")
    assert load_settings().api_auth_enabled is False


# ----- git hosts -----


def test_git_hosts_are_parsed_into_a_lower_case_host_map(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TELEMETRY_GIT_HOSTS", " Git.Example.com = GitLab , code.corp=github,,bb.local=BITBUCKET,"
    )
    assert load_settings().git_host_map == {
        "git.example.com": "gitlab",
        "code.corp": "github",
        "bb.local": "bitbucket",
    }


@pytest.mark.parametrize("spec", ["", " ", ",", " , ,"])
def test_empty_git_hosts_map_to_nothing(spec: str) -> None:
    assert parse_git_hosts(spec) == {}


@pytest.mark.parametrize(
    "spec",
    [
        "git.example.com",
        "git.example.com=",
        "=gitlab",
        " = gitlab",
        "git.example.com=gitea",
        "git.example.com:gitlab",
        "a=github,broken",
    ],
)
def test_malformed_git_hosts_entry_is_refused(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    with pytest.raises(ValueError, match="TELEMETRY_GIT_HOSTS"):
        parse_git_hosts(spec)
    monkeypatch.setenv("TELEMETRY_GIT_HOSTS", spec)
    with pytest.raises(ConfigurationError, match="TELEMETRY_GIT_HOSTS"):
        load_settings()


# ----- SQLite durability -----


@pytest.mark.parametrize(
    ("value", "expected"),
    [("wal", "WAL"), ("Delete", "DELETE"), ("truncate", "TRUNCATE"), ("PERSIST", "PERSIST")],
)
def test_journal_mode_is_case_insensitive(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("TELEMETRY_DB_JOURNAL_MODE", value)
    assert load_settings().db_journal_mode == expected


@pytest.mark.parametrize(("value", "expected"), [("full", "FULL"), ("Extra", "EXTRA")])
def test_synchronous_is_case_insensitive(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("TELEMETRY_DB_SYNCHRONOUS", value)
    assert load_settings().db_synchronous == expected


@pytest.mark.parametrize("value", ["MEMORY", "memory", "OFF", "off"])
def test_non_durable_journal_modes_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("TELEMETRY_DB_JOURNAL_MODE", value)
    with pytest.raises(ConfigurationError, match="TELEMETRY_DB_JOURNAL_MODE"):
        load_settings()


@pytest.mark.parametrize("value", ["NORMAL", "normal", "OFF", "off", "0", "1"])
def test_non_durable_synchronous_levels_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TELEMETRY_DB_SYNCHRONOUS", value)
    with pytest.raises(ConfigurationError, match="TELEMETRY_DB_SYNCHRONOUS"):
        load_settings()


# ----- database location -----


def test_database_url_overrides_db_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_DB_PATH", "/srv/ignored.sqlite")
    monkeypatch.setenv("TELEMETRY_DATABASE_URL", "sqlite:////srv/used.sqlite")
    assert load_settings().sqlite_path == Path("/srv/used.sqlite")


def test_db_path_is_used_without_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_DB_PATH", "/srv/used.sqlite")
    assert load_settings().sqlite_path == Path("/srv/used.sqlite")


@pytest.mark.parametrize("url", ["sqlite://relative.db", "/srv/x.sqlite", "mysql://x", "pg://x"])
def test_database_url_must_be_sqlite_or_postgresql(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TELEMETRY_DATABASE_URL", url)
    with pytest.raises(ConfigurationError, match="TELEMETRY_DATABASE_URL"):
        load_settings()


@pytest.mark.parametrize("url", ["postgresql://user:pw@db:5432/telemetry", "postgres://db/t"])
def test_postgresql_urls_select_postgres_and_allow_workers(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("TELEMETRY_DATABASE_URL", url)
    monkeypatch.setenv("TELEMETRY_API_WORKERS", "4")
    settings = load_settings()
    assert settings.uses_postgres
    assert settings.api_workers == 4


def test_several_workers_need_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMETRY_API_WORKERS", "2")
    with pytest.raises(ConfigurationError, match="TELEMETRY_API_WORKERS must be 1 with SQLite"):
        load_settings()


def test_settings_cannot_be_changed_after_loading() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.api_port = 1  # type: ignore[misc]


def test_describe_settings_shows_defaults_as_typed_in_the_environment() -> None:
    rows = {env: (default, description) for env, default, description in describe_settings()}
    assert rows["TELEMETRY_API_HOST"][0] == "127.0.0.1"
    assert rows["TELEMETRY_API_PORT"][0] == "8765"
    assert rows["TELEMETRY_API_AUTH_ENABLED"][0] == "false"
    assert rows["TELEMETRY_API_AUTH_TOKEN"][0] == ""
    assert rows["TELEMETRY_DB_JOURNAL_MODE"][0] == "WAL"
    assert all(description for _, description in rows.values())
