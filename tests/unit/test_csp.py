"""The Content-Security-Policy: on every console response, and nothing inline in the console's templates it would refuse."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import django
import pytest

from taskops.conf import config
from tests.support.processes import BASE_DIR

TEMPLATE_DIRS = [BASE_DIR / "taskops" / "templates", BASE_DIR / "templates"]
INLINE = [
    (re.compile(r"<style", re.I), "an inline <style>"),
    (re.compile(r"\sstyle\s*=", re.I), "a style attribute"),
    (re.compile(r"<script(?![^>]*\ssrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an event handler attribute"),
    (re.compile(r"javascript:", re.I), "a javascript: address"),
]


def _templates() -> list[Path]:
    return sorted(path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html"))


@pytest.mark.parametrize("path", _templates(), ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_console_templates_have_nothing_inline_the_policy_refuses(path):
    text = path.read_text()
    found = [what for pattern, what in INLINE if pattern.search(text)]

    assert found == []


def test_python_built_markup_has_no_inline_style():
    for module in (BASE_DIR / "taskops").rglob("*.py"):
        assert not re.search(r"""\sstyle=\\?["']""", module.read_text()), module


def test_the_hashed_style_is_djangos_own_change_list_style():
    template = Path(django.__file__).parent / "contrib/admin/templates/admin/change_list.html"
    styles = re.findall(r"<style>(.*?)</style>", template.read_text(), re.S)
    digests = {base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() for style in styles}

    assert digests and all(f"'sha256-{digest}'" in config.content_security_policy for digest in digests)


@pytest.mark.django_db
def test_pages_carry_the_policy(client, django_user_model):
    login = client.get("/admin/login/")
    client.force_login(django_user_model.objects.create_superuser("csp", password="x"))
    audit = client.get("/admin/taskops/auditentry/")

    for response in (login, audit):
        policy = response["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self';" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
