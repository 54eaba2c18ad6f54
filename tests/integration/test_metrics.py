"""GET /metrics: who may read it, Prometheus' text format, real values from a live worker and broker."""

from __future__ import annotations

import math
import re
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_results.models import TaskResult
from prometheus_client.parser import text_string_to_metric_families

from taskops import services
from taskops.models import QueuePause, RunRetry
from taskops.selectors.beat_health import PUBLISHED_KEY, BeatHealth
from tests.support.faults import FAILURES, broker_failing
from tests.support.poll import poll_until
from tests.support.tasks import send, unique

pytestmark = pytest.mark.django_db(transaction=True)

METRICS = reverse("taskops:metrics")
TOKEN = "s3cret-scrape-token"
TASK = "demo.tasks.generate_report"


def parse(text: str) -> dict[str, dict[frozenset, float]]:
    """Families by name, each {frozenset(labels): value}, read by Prometheus' own client parser."""
    return {family.name: {frozenset(s.labels.items()): s.value for s in family.samples}
            for family in text_string_to_metric_families(text)}


def scrape(client: Client | None = None) -> dict[str, dict[frozenset, float]]:
    cache.clear()  # a fresh reading: the values below were just made
    response = (client or Client()).get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def value(metrics, name: str, **labels) -> float | None:
    return metrics.get(name, {}).get(frozenset(labels.items()))


@pytest.fixture
def token(settings):
    settings.TASKOPS_METRICS_TOKEN = TOKEN


# --- Who may read it ---------------------------------------------------------------------------
def test_without_credentials_a_scraper_gets_401_not_a_login_page(isolated_broker, token):
    response = Client().get(METRICS)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="taskops-metrics"'
    assert "Location" not in response


@pytest.mark.parametrize("header", ["Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ",
                                    f"Bearer {TOKEN[:-1]}"])
def test_a_wrong_token_gets_401(header, isolated_broker, token):
    assert Client().get(METRICS, headers={"Authorization": header}).status_code == 401


def test_the_token_opens_it_and_the_answer_is_prometheus_text(isolated_broker, token):
    response = Client().get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"]
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert {"taskops_broker_up", "taskops_queue_depth", "taskops_workers_online",
            "taskops_runs_last_24h", "taskops_retries_last_24h",
            "taskops_beat_last_sample_age_seconds"} <= set(families)
    assert all(f.type == "gauge" and f.documentation for f in families.values())
    assert "last 24 h" in families["taskops_runs_last_24h"].documentation


def test_a_token_is_refused_when_none_is_configured(isolated_broker, settings):
    settings.TASKOPS_METRICS_TOKEN = ""

    assert Client().get(METRICS, headers={"Authorization": "Bearer "}).status_code == 401
    assert Client().get(METRICS, headers={"Authorization": "Bearer anything"}).status_code == 401


@pytest.mark.parametrize(("role", "status"), [("Managers", 200), ("Support", 200), ("Operations", 200),
                                              ("superuser", 200), ("staff", 403)])
def test_a_logged_in_user_with_the_permission_may_read_it(role, status, role_client, isolated_broker):
    client = role_client(role)

    assert client.get(METRICS).status_code == status
    # A wrong token is refused even with a session.
    assert client.get(METRICS, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_it_answers_get_only(isolated_broker, token):
    response = Client().post(METRICS, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 405


# --- What it says ------------------------------------------------------------------------------
def test_the_values_come_from_the_live_worker_broker_and_database(start_worker, token, actor, tmp_path,
                                                                  settings):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    waiting, work = unique("waiting"), unique("work")
    worker = start_worker(work, env={"TASKOPS_MEDIA_ROOT": settings.MEDIA_ROOT})
    for _ in range(3):
        send(TASK, args=["held"], queue=waiting)
    QueuePause.objects.create(queue=waiting)
    done = [send(TASK, args=[f"ok-{n}"], queue=work).id for n in range(2)]
    failed = send(TASK, args=["broken"], kwargs={"day": "not-a-date"}, queue=work).id
    poll_until(lambda: TaskResult.objects.filter(task_id__in=[*done, failed],
                                                 status__in=["SUCCESS", "FAILURE"]).count() == 3,
               timeout=30, message="the three runs end")
    assert services.task_retry(actor=actor, task_ids=[failed]).ok
    retry = RunRetry.objects.get().retry_task_id
    poll_until(lambda: TaskResult.objects.filter(task_id=retry, status="FAILURE").exists(),
               timeout=30, message="the retry fails like the original")
    make_old = TaskResult.objects.create(task_id="yesterday", task_name=TASK, status="SUCCESS")
    TaskResult.objects.filter(pk=make_old.pk).update(date_done=timezone.now() - timedelta(hours=25))

    metrics = poll_until(lambda: (m := scrape()) and value(m, "taskops_queue_depth", queue=waiting) == 3
                         and value(m, "taskops_worker_up", worker=worker.name) == 1 and m,
                         timeout=15, message="the scrape sees the queue and the worker")

    assert value(metrics, "taskops_broker_up") == 1
    assert value(metrics, "taskops_queue_paused", queue=waiting) == 1
    assert value(metrics, "taskops_queue_paused", queue="default") == 0
    assert value(metrics, "taskops_queue_depth", queue=work) == 0
    assert value(metrics, "taskops_queue_unacked") == 0
    assert value(metrics, "taskops_workers_online") == 1
    assert value(metrics, "taskops_runs_last_24h", task=TASK, state="SUCCESS") == 2  # not yesterday's
    assert value(metrics, "taskops_runs_last_24h", task=TASK, state="FAILURE") == 2
    assert value(metrics, "taskops_retries_last_24h") == 1
    assert value(metrics, "taskops_beat_last_sample_age_seconds") == math.inf  # no beat ran
    assert 0 <= value(metrics, "taskops_reading_age_seconds") < 5
    assert value(metrics, "taskops_broker_latency_seconds") < 2


def test_beat_sampling_shows_as_a_small_heartbeat_age(start_beat, token):
    start_beat(env={"TASKOPS_SAMPLE_INTERVAL": "1"})

    poll_until(lambda: value(scrape(), "taskops_beat_last_sample_age_seconds") < 5, timeout=30,
               message="beat's sampler records depths")


def test_hostile_task_names_are_escaped_as_label_values(isolated_broker, token):
    hostile = 'evil"task\\name\nnext{line="x"}'
    TaskResult.objects.create(task_id="h1", task_name=hostile, status="FAILURE")
    TaskResult.objects.create(task_id="h2", task_name=None, status="REVOKED")  # a revoke of an unknown id

    metrics = scrape()

    assert value(metrics, "taskops_runs_last_24h", task=hostile, state="FAILURE") == 1
    assert value(metrics, "taskops_runs_last_24h", task="(none)", state="REVOKED") == 1


@pytest.mark.parametrize("failure", FAILURES)
def test_a_dead_broker_is_reported_quickly_not_a_hang_or_an_error(failure, isolated_broker, token):
    with broker_failing(isolated_broker, failure):
        started = time.monotonic()
        metrics = scrape()
        elapsed = time.monotonic() - started

    assert elapsed < 2.5, f"/metrics took {elapsed:.2f} s with the broker {failure}"
    assert value(metrics, "taskops_broker_up") == 0
    assert metrics["taskops_queue_depth"] == {}  # unknown, not zero
    assert value(metrics, "taskops_workers_online") == 0
    assert "taskops_runs_last_24h" in metrics  # the database still answers


def test_the_dashboard_and_metrics_tell_the_same_age_of_beats_last_dispatch(fake_cluster, token,
                                                                            role_client):
    """Both read beat's published health (here published 10 s ago) and count the age until now."""
    now = timezone.now()
    health = BeatHealth(checked_at=now - timedelta(seconds=10), grace_seconds=60,
                        last_dispatch_at=now - timedelta(seconds=100), last_dispatch_name="nightly",
                        dispatch_recorded=True, last_sample_at=now - timedelta(seconds=10),
                        sampler_alive=True, enabled_schedules=1, due_not_sent=False)
    cache.set(PUBLISHED_KEY, {"health": health, "interval": 10}, timeout=60)

    dashboard = role_client("Operations").get(reverse("admin:index")).content.decode()
    metrics = parse(Client().get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).content.decode())

    shown = re.search(r"last dispatched: nightly, (?:(\d+) min )?(\d+) s ago", dashboard)
    assert shown, dashboard
    dashboard_age = int(shown.group(1) or 0) * 60 + int(shown.group(2))
    metrics_age = value(metrics, "taskops_beat_last_dispatch_age_seconds")
    assert 100 <= dashboard_age <= metrics_age <= dashboard_age + 2, (dashboard_age, metrics_age)
