"""DATABASE_URL and boolean parsing for the environment-driven settings."""

from pathlib import Path

import pytest

from console.envconf import database_from_url, env_bool


def test_relative_sqlite_path_is_under_the_base_dir(tmp_path):
    config = database_from_url("sqlite:///var/db.sqlite3", base_dir=tmp_path)

    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "var" / "db.sqlite3")
    assert config["TEST"]["NAME"] == str(tmp_path / "var" / "test_db.sqlite3")
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


def test_absolute_sqlite_path_is_kept(tmp_path):
    config = database_from_url("sqlite:////srv/taskops/db.sqlite3", base_dir=tmp_path)

    assert config["NAME"] == str(Path("/srv/taskops/db.sqlite3"))


def test_postgres_url_with_credentials_and_options():
    config = database_from_url(
        "postgres://ops:s%40cret@db.internal:6432/taskops?sslmode=require&connect_timeout=5",
        base_dir=Path("/"),
    )

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"]) == ("ops", "s@cret")
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.internal", "6432", "taskops")
    assert config["OPTIONS"] == {"connect_timeout": 5, "sslmode": "require"}


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(ValueError, match="not supported"):
        database_from_url("mysql://root@localhost/taskops", base_dir=Path("/"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("0", False), ("no", False), ("", True)],
)
def test_env_bool(monkeypatch, raw, expected):
    monkeypatch.setenv("TASKOPS_SOME_FLAG", raw)

    assert env_bool("TASKOPS_SOME_FLAG", True) is expected


@pytest.mark.parametrize(
    ("broker", "cache"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1"),
        ("redis://:secret@redis.internal:6380", "redis://:secret@redis.internal:6380/1"),
        ("rediss://cache.example.com/3?ssl_cert_reqs=none", "rediss://cache.example.com/1"),
        ("amqp://guest:guest@127.0.0.1:5672//", ""),
    ],
)
def test_cache_url_is_the_brokers_redis_database_1(broker, cache):
    from console.envconf import redis_url_with_db

    assert redis_url_with_db(broker, 1) == cache


def test_a_bad_json_setting_names_the_variable(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from console.envconf import env_json

    monkeypatch.setenv("TASKOPS_REPORTS", '{"Sales": ')
    with pytest.raises(ImproperlyConfigured, match="TASKOPS_REPORTS is not valid JSON"):
        env_json("TASKOPS_REPORTS", None)
    monkeypatch.setenv("TASKOPS_REPORTS", '{"Sales": "demo.tasks.*"}')
    assert env_json("TASKOPS_REPORTS", None) == {"Sales": "demo.tasks.*"}
    monkeypatch.delenv("TASKOPS_REPORTS")
    assert env_json("TASKOPS_REPORTS", {"x": 1}) == {"x": 1}
