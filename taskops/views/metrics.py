"""GET /metrics: the cluster as prometheus-client's collectors and encoder write it, for a bearer token or a viewer."""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from taskops.conf import config
from taskops.permissions import can
from taskops.selectors.metrics import RUNS_WINDOW, MetricsReading, metrics_reading

def _age(moment) -> float:
    """Seconds since `moment`; +Inf when it never happened (so "age > N" alerts fire)."""
    return (timezone.now() - moment).total_seconds() if moment else math.inf


def _or_inf(seconds: float | None) -> float:
    """A duration, or +Inf for one that never started (so "age > N" alerts fire)."""
    return math.inf if seconds is None else seconds


def _gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> GaugeMetricFamily:
    """A gauge family from (labels, value) samples; every sample of a family has the same labels."""
    labels = list(samples[0][0]) if samples else []
    family = GaugeMetricFamily(name, help_text, labels=labels)
    for sample_labels, value in samples:
        family.add_metric([str(sample_labels[label]) for label in labels], float(value))
    return family


class ConsoleCollector(Collector):
    """Every console metric, from one cluster reading and one database reading."""

    def __init__(self, reading: MetricsReading) -> None:
        self.reading = reading

    def collect(self) -> Iterator[GaugeMetricFamily]:
        cluster, db, beat = self.reading.cluster, self.reading.database, self.reading.beat
        hours = f"{RUNS_WINDOW.total_seconds() / 3600:g} h"
        yield _gauge("taskops_broker_up", "1 when the console's last reading of the broker "
                     "succeeded, 0 when the broker did not answer in time.", [({}, cluster.broker_ok)])
        yield _gauge("taskops_reading_age_seconds", "Age of the shared cluster reading these "
                     "values come from.", [({}, _age(cluster.taken_at))])
        if cluster.broker_ok:
            yield _gauge("taskops_broker_latency_seconds", "Time the last broker reading took.",
                         [({}, cluster.latency_ms / 1000)])
        yield _gauge("taskops_queue_depth", "Messages waiting in a queue, all priority levels.",
                     [({"queue": q.name}, q.depth) for q in cluster.queues if q.depth is not None])
        yield _gauge("taskops_queue_paused", "1 when the console paused consumption of the "
                     "queue cluster-wide.", [({"queue": q.name}, q.paused) for q in cluster.queues])
        if cluster.in_flight_total is not None:
            yield _gauge("taskops_queue_unacked", "Messages taken by workers and not yet "
                         "acknowledged (prefetched, running or waiting for their ETA).",
                         [({}, cluster.in_flight_total)])
        yield _gauge("taskops_queue_stranded", "Messages taken from a queue by a worker that is gone "
                     "and held by no worker: they wait for the broker's visibility timeout.",
                     [({"queue": q.name}, q.stranded) for q in cluster.queues if q.stranded is not None])
        yield _gauge("taskops_workers_online", "Workers that answered the console's last "
                     "reading.", [({}, cluster.online_count)])
        yield _gauge("taskops_worker_up", "1 for a worker that answered the last reading, 0 for "
                     "one the console saw before that did not.",
                     [({"worker": w.name}, w.status == "online") for w in cluster.workers])
        yield _gauge("taskops_runs_last_24h", f"Task runs whose state last changed in the last "
                     f"{hours}, by task and state (a sliding window, not a counter).",
                     [({"task": task or "(none)", "state": state}, n) for task, state, n in db.runs])
        yield _gauge("taskops_retries_last_24h", f"Retries sent through the console in the last "
                     f"{hours} (a sliding window, not a counter).", [({}, db.retries)])
        yield _gauge("taskops_beat_last_sample_age_seconds", "Seconds since beat's sampler last "
                     "recorded queue depths (beat's heartbeat; +Inf when never).",
                     [({}, _or_inf(beat.sampler_age_seconds))])
        yield _gauge("taskops_beat_last_dispatch_age_seconds", "Seconds since beat last sent a "
                     "periodic task (beat's own record, else the newest run a schedule started; "
                     "+Inf when never).", [({}, _or_inf(beat.dispatch_age_seconds))])
        yield _gauge("taskops_beat_due_not_sent", "1 when schedules are due and beat has sent "
                     "nothing since the first of them was due.", [({}, beat.due_not_sent)])
        yield _gauge("taskops_schedules_late", "Enabled schedules whose expected run did not "
                     "happen within the grace period (missed: a later run is overdue too).",
                     [({"state": state}, sum(1 for s in beat.late if s.state == state))
                      for state in ("late", "missed")])
        yield _gauge("taskops_schedules_enabled", "Enabled periodic tasks.",
                     [({}, beat.enabled_schedules)])


def metrics_exposition(reading: MetricsReading, accept: str = "") -> tuple[bytes, str]:
    """The reading in the format the scraper accepts (Prometheus text, or OpenMetrics), and its type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector(reading))
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _unauthorized(message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="taskops-metrics"'
    return response


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Answers a valid bearer token (TASKOPS_METRICS_TOKEN) or a staff login with metrics.view.

    Scrapers get 401, never a redirect to the login page; a wrong token is refused even with a
    session; a logged-in user without the permission gets 403.
    """
    token = config.metrics_token
    given = _bearer(request)
    if given is not None:
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return _unauthorized("The bearer token is not valid.")
    elif not request.user.is_authenticated:
        return _unauthorized("Send the metrics token as a bearer token, or log in to the console.")
    elif not can(request.user, "metrics.view"):
        return HttpResponse("You may not read the metrics.\n", status=403,
                            content_type="text/plain; charset=utf-8")
    body, content_type = metrics_exposition(metrics_reading(), request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
