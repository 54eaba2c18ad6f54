"""The production profile's settings: `check --deploy` clean as documented, no public key, logins land on the console."""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

from django.contrib.auth.views import LoginView
from django.test import RequestFactory

from tests.support.processes import BASE_DIR


def documented_production_variables() -> dict[str, str]:
    """The `export NAME=value` lines of README's production deployment block, in order."""
    readme = (BASE_DIR / "README.md").read_text()
    section = readme[readme.index("## Production deployment"):]
    block = section[section.index("```sh"):section.index("```", section.index("```sh") + 5)]
    variables: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("export "):
            variables.update(item.split("=", 1) for item in line.split()[1:])
    return variables


def settings_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    """A clean environment for a process loading console.settings: nothing inherited from this one."""
    inherited = {name: value for name, value in os.environ.items()
                 if not name.startswith(("DJANGO_", "TASKOPS_", "DATABASE_URL", "CELERY_"))}
    return {**inherited, "DJANGO_SETTINGS_MODULE": "console.settings",
            "TASKOPS_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            **variables}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], cwd=BASE_DIR,
                          env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_documented_production_variables(tmp_path):
    documented = documented_production_variables()
    # The README leaves secrets and servers as "..."; fill those in, keep every other value.
    filled = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
              "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
              "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"}
    assert {name for name, value in documented.items() if "..." in value} <= set(filled)
    variables = {**documented, **{name: filled[name] for name in documented if name in filled}}
    assert variables["DJANGO_BEHIND_TLS_PROXY"] == "1"

    result = manage(settings_env(tmp_path, **variables), "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_documented_production_variables_turn_on_https_only():
    from django.conf import settings

    documented = documented_production_variables()
    script = ("import django; from django.conf import settings as s; django.setup(); "
              "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
              "s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER)")
    env = {**os.environ, **documented, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
           "DATABASE_URL": settings.DATABASE_URL, "DJANGO_SETTINGS_MODULE": "console.settings"}
    out = subprocess.run([sys.executable, "-c", script], cwd=BASE_DIR, env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout

    assert out.split(None, 4) == ["True", "31536000", "True", "True",
                                  "('HTTP_X_FORWARDED_PROTO', 'https')\n"]


def test_debug_off_with_the_public_development_key_refuses_to_start(tmp_path):
    result = manage(settings_env(tmp_path, DJANGO_DEBUG="0"), "check")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert re.search(r"DJANGO_SECRET_KEY is not set: the console refuses to start", result.stderr)


def test_the_development_key_still_serves_a_debug_machine(tmp_path):
    result = manage(settings_env(tmp_path, DJANGO_DEBUG="1"), "check")

    assert result.returncode == 0, result.stderr


def test_a_login_without_a_next_address_lands_on_the_console():
    view = LoginView()
    view.request = RequestFactory().get("/login/")

    assert view.get_default_redirect_url() == "/admin/"


def test_make_run_prod_makes_and_keeps_a_key_of_its_own(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("devstack", BASE_DIR / "scripts" / "devstack.py")
    devstack = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "devstack", devstack)
    spec.loader.exec_module(devstack)

    first = devstack.local_secret_key(tmp_path)

    assert len(first) >= 50 and first == devstack.local_secret_key(tmp_path)
    assert stat.S_IMODE((tmp_path / "secret-key").stat().st_mode) == 0o600
