"""DATABASE_URL, cache and boolean parsing for the environment-driven settings."""

import subprocess
import sys
from pathlib import Path

import pytest

from console.envconf import database_from_url, env_bool
from tests.support.processes import BASE_DIR


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


@pytest.mark.parametrize("url, backend", [
    ("redis://127.0.0.1:6379/1", "django.core.cache.backends.redis.RedisCache"),
    ("", "django.core.cache.backends.db.DatabaseCache"),
    ("db", "django.core.cache.backends.db.DatabaseCache"),
])
def test_the_cache_is_redis_or_the_database_never_one_per_process(url, backend):
    from console.envconf import cache_from_url

    assert cache_from_url(url)["BACKEND"] == backend


def test_a_cache_url_of_another_kind_is_refused():
    from django.core.exceptions import ImproperlyConfigured

    from console.envconf import cache_from_url

    with pytest.raises(ImproperlyConfigured, match="TASKOPS_CACHE_URL"):
        cache_from_url("memcached://127.0.0.1:11211")


def test_on_rabbitmq_the_deployment_shares_its_cache_through_the_database(tmp_path):
    from tests.unit.test_production_settings import settings_env

    env = settings_env(tmp_path, DJANGO_DEBUG="1", CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//")
    code = ("import django; django.setup(); from django.conf import settings; "
            "from django.core.checks import run_checks; "
            "print(settings.CACHES['default']['BACKEND'], [m.id for m in run_checks()])")
    result = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "django.core.cache.backends.db.DatabaseCache"
    assert "taskops.W001" not in result.stdout


def test_a_cache_of_one_process_is_a_warning(settings):
    from taskops.checks import shared_cache_check

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    assert [w.id for w in shared_cache_check()] == ["taskops.W001"]
