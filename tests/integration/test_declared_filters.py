"""Every console list applies only its declared filters: other lookups in the address never reach the database."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from taskops.admin.pages import ConsolePageAdmin, DeclaredFiltersChangeList, declared_parameters
from taskops.conf import config

pytestmark = pytest.mark.django_db(transaction=True)

MARK = "zz-hostile-7d1f"  # a value no query may carry


def _console_admins() -> list:
    return sorted(((model, model_admin) for model, model_admin in admin.site._registry.items()
                   if type(model_admin).__module__.startswith("taskops.")),
                  key=lambda pair: pair[0]._meta.label)


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def _declared(model, model_admin, user) -> set[str]:
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    return declared_parameters(list_filter=model_admin.list_filter,
                               date_hierarchy=model_admin.date_hierarchy, model=model,
                               model_admin=model_admin, request=request)


def _hostile_params(model, declared: set[str]) -> list[dict]:
    """A regex and a substring lookup on every column, and lookups across each relation (each
    one the list does not declare)."""
    params = []
    for field in model._meta.concrete_fields:
        params += [{f"{field.name}__regex": MARK}, {f"{field.name}__icontains": MARK},
                   {field.attname: MARK}]
        if field.is_relation:
            params += [{f"{field.name}__password__startswith": MARK},
                       {f"{field.name}__{field.related_model._meta.pk.name}__gt": MARK}]
    params = [p for p in params if not set(p) & declared]
    return [*params, {"_changelist_filters": MARK}, {"e": "1", "traceback__iregex": MARK}]


def _sql_with_mark(queries) -> list[str]:
    return [q["sql"] for q in queries if MARK in q["sql"] or "REGEXP" in q["sql"].upper()]


def test_every_console_list_refuses_undeclared_lookups_with_a_message_before_any_query(
    role_client, isolated_broker, existing_run_and_job, django_user_model
):
    client = role_client("superuser")
    user = django_user_model.objects.get(is_superuser=True)
    lists = 0
    for model, model_admin in _console_admins():
        url = _changelist(model)
        for params in _hostile_params(model, _declared(model, model_admin, user)):
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url, params)
            assert response.status_code < 500, (url, params)
            assert not _sql_with_mark(queries.captured_queries), (url, params)
            if isinstance(model_admin, ConsolePageAdmin):
                continue  # a console page reads no lookups from its address
            assert response.status_code == 302, (url, params, response.status_code)
            assert response["Location"] == url, (url, params)
            page = client.get(response["Location"])
            assert page.status_code == 200
            assert "This list has no filter" in page.content.decode(), (url, params)
        lists += not isinstance(model_admin, ConsolePageAdmin)
    assert lists >= 5  # runs, audit, approvals, schedules, group results


def test_declared_filters_searching_ordering_and_paging_still_work(role_client, isolated_broker,
                                                                   existing_run_and_job,
                                                                   django_user_model):
    client = role_client("superuser")
    user = django_user_model.objects.get(is_superuser=True)
    for model, model_admin in _console_admins():
        if isinstance(model_admin, ConsolePageAdmin):
            continue
        assert issubclass(model_admin.get_changelist(None), DeclaredFiltersChangeList), model
        url = _changelist(model)
        for name in sorted(_declared(model, model_admin, user)):
            value = ("2026" if name.endswith("__year") else "1" if name.endswith(("__month", "__day"))
                     else "True" if name.endswith("__isnull") else "2026-01-01 00:00:00+00:00"
                     if name.endswith(("__gte", "__lt")) else "x")
            response = client.get(url, {name: value, "q": "x", "o": "1", "p": "0"}, follow=True)
            assert response.status_code == 200, (url, name)
            assert "This list has no filter" not in response.content.decode(), (url, name)


def test_a_support_user_cannot_read_tracebacks_through_the_run_list(role_client, isolated_broker,
                                                                    existing_run_and_job):
    client = role_client("Support")
    url = reverse("admin:taskops_taskrun_changelist")

    response = client.get(url, {"status__exact": "FAILURE", "traceback__icontains": MARK,
                                "before": "2030-01-01T00:00:00"}, follow=True)

    assert response.redirect_chain[-1][0].startswith(url + "?")
    kept = response.redirect_chain[-1][0]
    assert "status__exact=FAILURE" in kept and "before=" in kept and "traceback" not in kept
    assert "This list has no filter &#x27;traceback__icontains&#x27;" in response.content.decode()


def test_retry_matching_and_export_refuse_undeclared_lookups_too(role_client, isolated_broker,
                                                                 existing_run_and_job):
    from taskops.models import AuditEntry

    client = role_client("superuser")
    with CaptureQueriesContext(connection) as queries:
        retried = client.post(reverse("admin:taskops_taskrun_retry_matching"),
                              {"meta__regex": MARK, "reason": "try"}, follow=True)
        exported = client.get(reverse("admin:taskops_auditentry_export"),
                              {"params__icontains": MARK}, follow=True)
    assert not _sql_with_mark(queries.captured_queries)
    assert "Nothing was retried" in retried.content.decode()
    assert "This list has no filter" in retried.content.decode()
    assert "nothing was exported" in exported.content.decode()
    assert not AuditEntry.objects.filter(action="task.retry").exists()


@pytest.mark.parametrize("name", ["admin:taskops_taskrun_changelist", "admin:taskops_auditentry_changelist",
                                  "admin:taskops_pendingaction_changelist",
                                  "admin:django_celery_beat_periodictask_changelist"])
def test_a_search_over_the_limit_is_refused_and_one_at_the_limit_runs(name, role_client, isolated_broker):
    client = role_client("superuser")
    limit = config.search_max_chars

    refused = client.get(reverse(name), {"q": "a " * 30_000}, follow=True)
    words = client.get(reverse(name), {"q": ("ab " * limit)[:limit]})
    one = client.get(reverse(name), {"q": "x" * limit})

    assert refused.status_code == 200
    assert f"A search may be at most {limit:,} characters long" in refused.content.decode()
    assert words.status_code == 200 and one.status_code == 200
