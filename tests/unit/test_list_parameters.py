"""Which query parameters a console list reads: its declared filters and date hierarchy, nothing else."""

import pytest
from django.contrib import admin
from django.test import RequestFactory

from taskops.admin.pages import ListParametersRefused, declared_parameters, list_parameters_check
from taskops.models import AuditEntry, TaskRun


def _declared(model) -> set[str]:
    model_admin = admin.site._registry[model]
    return declared_parameters(list_filter=model_admin.list_filter,
                               date_hierarchy=model_admin.date_hierarchy, model=model,
                               model_admin=model_admin, request=RequestFactory().get("/"))


def test_the_audit_log_reads_its_field_filters_and_its_date_hierarchy():
    assert _declared(AuditEntry) == {
        "action", "action__isnull", "outcome__exact", "outcome__isnull", "actor_name",
        "actor_name__isnull", "created_at__gte", "created_at__lt", "created_at__year",
        "created_at__month", "created_at__day"}


def test_the_run_list_reads_its_own_filters_by_their_parameter_names():
    assert _declared(TaskRun) == {
        "status__exact", "task_name", "worker", "queue", "periodic_task_name", "date_done__gte",
        "date_done__lt"}


def test_undeclared_parameters_are_named_in_order():
    with pytest.raises(ListParametersRefused) as refusal:
        list_parameters_check(["worker", "traceback__regex", "meta__icontains"], "",
                              declared={"worker"})
    assert refusal.value.names == ("meta__icontains", "traceback__regex")
    assert "no filter 'meta__icontains', 'traceback__regex': they were not applied" in str(refusal.value)


def test_a_search_over_the_limit_is_refused_one_at_the_limit_is_not(settings):
    settings.TASKOPS_SEARCH_MAX_CHARS = 10
    list_parameters_check([], "x" * 10, declared=set())
    with pytest.raises(ListParametersRefused) as refusal:
        list_parameters_check([], "x" * 11, declared=set())
    assert refusal.value.names == ("q",)
    assert "at most 10 characters" in str(refusal.value)
