"""Hypothesis fuzzes the console's list filters, query strings and forms: no input yields a 500.

The cluster is the in-memory one (tests/support/fakes.py, held to the real adapters by
test_adapter_contracts.py), so each example costs a request, not a control timeout.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_audit_coverage import CASES, Cluster
from tests.integration.test_pages import GET_PAGES, JOB, POST_ACTIONS, RUN, SCHEDULE, WORKER

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Parameter names the admin and the console's pages understand, plus odd lookups a visitor may
# type by hand (relations, regexes, transforms on JSON, unknown fields).
KNOWN_KEYS = [
    "q", "o", "p", "e", "all", "_changelist_filters", "status__exact", "task_name__exact",
    "task_name", "worker__exact", "worker", "queue", "periodic_task_name__exact", "periodic",
    "date_done__gte", "date_done__lt", "date_created__gte", "date_done__range", "id__gt",
    "task_id__in", "task_args__regex", "meta__contains", "result__isnull", "traceback__iregex",
    "action__exact", "outcome__exact", "actor_name__exact", "actor__username", "created_at__year",
    "created_at__month", "state__exact", "enabled__exact", "crontab__timezone", "task",
    "interval__every__gt", "params__has_key", "password", "user__password__startswith",
    "after", "before", "cursor", "report", "days", "format", "limit", "refresh", "n",
    # Declared filters of the console's lists and lookups they refuse (taskops.admin.pages).
    "action", "outcome__exact", "actor_name", "created_at__day", "created_at__gte", "state__isnull",
    "date_done__isnull", "kind", "one_off__exact", "traceback__icontains", "meta__regex",
    "reason__regex", "params__icontains", "task_kwargs__iregex", "result__regex",
]
ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "0", "-1", "1e309", "NaN", "9" * 30, "2026-02-30", "2026-11-21T25:61",
                     "\x00", "a\x00b", "%", "'", "\"", "[]", "{}", "null", "<script>", "../../etc",
                     "SUCCESS", "FAILURE", "-date_done", "1.2.3", "true", "None", "\u202e",
                     # names from the broker, and input past the console's limits
                     "a/b", "~", "~2F", ".", "..", "=cmd|' /C calc'!A0", "a " * 600, "x" * 50_001,
                     "[" * 5_000, '["' + "x" * 250_000 + '"]']),
)
QUERY = st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(min_size=1, max_size=20)),
                        ODD_TEXT, max_size=5)


@pytest.fixture(autouse=True)
def _a_worker_answers(fake_cluster):
    """The pages' worker answers (the in-memory cluster): valid input reaches its actions too."""
    fake_cluster.worker_add(WORKER, "default")


@pytest.fixture
def superuser_client(django_user_model):
    client = Client(raise_request_exception=False)
    client.force_login(django_user_model.objects.create_superuser("fuzzer", password="x"))
    return client


@pytest.mark.parametrize("page", sorted(GET_PAGES), ids=lambda p: p[0].split(":")[1])
def test_no_query_string_makes_a_page_fail(page, superuser_client, fake_cluster, existing_run_and_job):
    name, args = page

    @FUZZ
    @given(query=QUERY)
    def check(query):
        response = superuser_client.get(reverse(name, args=args), query)
        assert response.status_code < 500, (query, response.status_code)

    check()


FORM_FIELDS = [
    "reason", "confirm", "n", "direction", "max_processes", "min_processes", "task_name", "rate",
    "task_id", "terminate", "signal", "args", "kwargs", "queue", "priority", "countdown", "eta",
    "expires", "time_limit", "soft_time_limit", "decision", "next", "name", "task", "kind",
    "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone", "every",
    "period", "clocked_time", "one_off", "enabled", "headers", "format", "force",
]
FORM = st.dictionaries(st.sampled_from(FORM_FIELDS), ODD_TEXT, max_size=8)
# Any scene will do for reading which fields an action's audit-coverage case posts.
_ANY_SCENE = Cluster("q", WORKER, WORKER, RUN, JOB, None, SCHEDULE)


def form_of(name: str) -> st.SearchStrategy[dict]:
    """Odd values in the fields this action reads (its audit-coverage case's), plus any others.

    Drawing only from every field the console knows, an action rarely got its own fields
    together (the pool form saw `n` and `direction` in none of 25 examples).
    """
    own = sorted(CASES[name].data(_ANY_SCENE)) if name in CASES else []
    fields = st.fixed_dictionaries({}, optional={field: ODD_TEXT for field in own})
    return st.tuples(fields, FORM).map(lambda drawn: {**drawn[1], **drawn[0]})


@pytest.mark.parametrize("action", sorted(POST_ACTIONS), ids=lambda p: p[0].split(":")[1])
def test_no_form_input_makes_an_action_fail(action, superuser_client, fake_cluster, existing_run_and_job):
    name, args = action

    @FUZZ
    @given(data=form_of(name))
    def check(data):
        response = superuser_client.post(reverse(name, args=args), data)
        assert response.status_code < 500, (data, response.status_code)

    check()


@pytest.mark.parametrize("page", sorted(p for p in GET_PAGES if p[1]), ids=lambda p: p[0].split(":")[1])
def test_odd_values_in_the_address_itself_never_make_a_page_fail(page, superuser_client,
                                                                 fake_cluster, existing_run_and_job):
    name, args = page

    @FUZZ
    @given(value=ODD_TEXT.filter(bool))
    def check(value):
        # The value goes into the address as typed (quoted), whether or not the route accepts it.
        real = str(args[0])
        url = reverse(name, args=args).replace(f"/{real}/", f"/{quote(value, safe='')}/", 1)
        response = superuser_client.get(url)
        assert response.status_code < 500, (url, response.status_code)

    check()
