"""Which tasks a person may send (deny and allow lists), Celery's own queues, and each broker's priorities."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from taskops.broker import celery_own_queue, priority_range
from taskops.conf import celery_app
from taskops.permissions import task_name_refusal
from taskops.selectors.catalog import KnownTaskNames

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(django_user_model):
    def make(*groups: str, superuser: bool = False):
        user = django_user_model.objects.create_user(f"u{django_user_model.objects.count()}",
                                                     is_staff=True, is_superuser=superuser)
        for name in groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        return user

    return make


@pytest.mark.parametrize("name", ["celery.backend_cleanup", "celery.chord_unlock",
                                  "taskops.retry_job_run"])
def test_the_default_deny_list_holds_for_everyone_the_console_included(name, person):
    for user in (None, person(superuser=True), person("Operations")):
        assert "TASKOPS_TASK_DENY" in task_name_refusal(user, name)
    assert "without a task name" in task_name_refusal(None, "")


def test_the_allow_list_restricts_only_people_whose_every_group_has_an_entry(person, settings):
    settings.TASKOPS_TASK_ALLOW = {"Support": ["demo.tasks.generate_*", "demo.tasks.send_email"],
                                   "Interns": []}
    support, both, interns = person("Support"), person("Support", "Operations"), person("Interns")

    assert task_name_refusal(support, "demo.tasks.generate_report") == ""
    assert task_name_refusal(support, "demo.tasks.send_email") == ""
    assert "may send only demo.tasks.generate_*, demo.tasks.send_email (TASKOPS_TASK_ALLOW)" in (
        task_name_refusal(support, "demo.tasks.flaky_call"))
    assert task_name_refusal(both, "demo.tasks.flaky_call") == ""  # Operations has no entry
    assert task_name_refusal(person(), "demo.tasks.flaky_call") == ""  # in no group at all
    assert task_name_refusal(person("Support", superuser=True), "demo.tasks.flaky_call") == ""
    assert "may send only no task" in task_name_refusal(interns, "demo.tasks.generate_report")
    assert task_name_refusal(support, "taskops.retry_job_run").endswith("TASKOPS_TASK_DENY.")


def test_an_incomplete_catalog_vouches_only_for_what_a_live_worker_confirms():
    complete = KnownTaskNames(local=frozenset({"here.only", "both"}),
                              on_workers=frozenset({"both", "workers.only"}), complete=True)
    incomplete = KnownTaskNames(local=complete.local, on_workers=complete.on_workers,
                                complete=False)
    broker_down = KnownTaskNames(local=complete.local, on_workers=frozenset(), complete=False,
                                 broker_ok=False)

    assert [complete.refusal(n) for n in ("here.only", "both", "workers.only")] == ["", "", ""]
    assert "registered here or on any live worker" in complete.refusal("nowhere")
    assert [incomplete.refusal(n) for n in ("both", "workers.only")] == ["", ""]
    assert "not every worker answered" in incomplete.refusal("here.only")
    assert "the broker did not answer" in broker_down.refusal("both")


@pytest.mark.parametrize("name, own", [
    ("x.pidbox", True), ("celery.pidbox", True), ("w1@host.celery.pidbox", True),
    ("5d4e.reply.celery.pidbox", True), ("reply.celery.pidbox", True), ("celeryev", True),
    ("celeryev.3f2a", True), ("_kombu.binding.default", True), ("default\x06\x163", True),
    ("default", False), ("reports", False), ("pidbox-like", False), ("my.celery.queue", False),
])
def test_celerys_own_queues_are_told_from_task_queues(name, own):
    assert celery_own_queue(name) is own


def test_the_priority_range_follows_the_transport_and_the_queues_declaration(monkeypatch):
    conf = celery_app().conf
    redis_range = priority_range("default")
    assert (redis_range.low, redis_range.high) == (0, 9)
    assert redis_range.refusal(9) == "" and redis_range.refusal(None) == ""
    assert redis_range.refusal(10).startswith("Priority must be 0–9 here: kombu's redis transport")

    monkeypatch.setattr(conf, "broker_url", "amqp://guest:guest@127.0.0.1:1//")  # never connected
    declared, created = priority_range("reports"), priority_range("made-up")
    assert (declared.low, declared.high) == (0, 9) and "x-max-priority 9" in declared.note
    assert created.high == 9  # queues Celery creates get task_queue_max_priority, 9 here
    monkeypatch.setitem(conf, "task_queue_max_priority", None)
    undeclared = priority_range("made-up")
    assert (undeclared.low, undeclared.high) == (0, 255)
    assert "not declared with x-max-priority" in undeclared.refusal(256)
