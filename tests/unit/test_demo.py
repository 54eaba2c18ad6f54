"""The demo workload: idempotent tasks and an idempotent seed."""

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django_celery_beat.models import PeriodicTask

from demo import tasks
from demo.schedules import DEMO_USERS, demo_schedules_seed, demo_users_seed


def test_report_is_idempotent_for_the_same_day(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path

    first = tasks.generate_report("sales", day="2026-01-31", rows=5)
    content = open(first).read()
    second = tasks.generate_report("sales", day="2026-01-31", rows=5)

    assert first == second
    assert open(second).read() == content
    assert len(content.splitlines()) == 6


def test_report_name_cannot_escape_the_reports_folder(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path

    path = tasks.generate_report("../../etc/passwd", day="2026-01-31", rows=1)

    assert str(path).startswith(str(tmp_path / "reports"))


@pytest.mark.django_db
def test_email_is_sent_once_per_idempotency_key(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    user = User.objects.create_user("reader", email="reader@example.com")

    first = tasks.send_email.apply(args=[user.pk, "welcome"], kwargs={"idempotency_key": "k1"}).get()
    again = tasks.send_email.apply(args=[user.pk, "welcome"], kwargs={"idempotency_key": "k1"}).get()

    assert first["sent"] is True and again["sent"] is False
    assert [m.to for m in mail.outbox] == [["reader@example.com"]]


@pytest.mark.django_db
def test_seed_twice_gives_the_same_users_and_schedules():
    demo_users_seed()
    names = demo_schedules_seed()
    demo_users_seed()
    again = demo_schedules_seed()

    assert names == again
    assert PeriodicTask.objects.filter(name__in=names).count() == len(names)
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo")
    support = User.objects.get(username="support")
    assert support.is_staff and not support.is_superuser
    assert list(support.groups.values_list("name", flat=True)) == ["Support"]
    assert User.objects.filter(username__in=[u.username for u in DEMO_USERS]).count() == 4


@pytest.mark.django_db
def test_the_health_check_fires_as_often_as_the_setting_says(settings):
    settings.DEMO_HEALTH_CHECK_SECONDS = 3

    demo_schedules_seed()

    check = PeriodicTask.objects.get(name="Partner API health check")
    assert (check.interval.every, check.interval.period) == (3, "seconds")
    assert check.description.startswith("Every 3 s")
