"""GET /metrics: the cluster in Prometheus' text format, for a bearer token or a logged-in viewer."""

from __future__ import annotations

import hmac
import math
from collections.abc import Iterable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from taskops.conf import config
from taskops.permissions import can
from taskops.selectors.metrics import RUNS_WINDOW, MetricsReading, metrics_reading

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Samples = Iterable[tuple[dict[str, str], float]]


def _label_value(value: str) -> str:
    """A label value escaped as the exposition format wants: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Exposition:
    """Prometheus text format 0.0.4: one HELP and TYPE per family, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Samples) -> None:
        self.lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2)}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{key}="{_label_value(str(val))}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{text}}} {_number(value)}" if text else
                              f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _age(moment) -> float:
    """Seconds since `moment`; +Inf when it never happened (so "age > N" alerts fire)."""
    return (timezone.now() - moment).total_seconds() if moment else math.inf


def metrics_text(reading: MetricsReading) -> str:
    """Every console metric, from one cluster reading and one database reading."""
    cluster, db = reading.cluster, reading.database
    hours = f"{RUNS_WINDOW.total_seconds() / 3600:g} h"
    out = Exposition()
    out.family("taskops_broker_up", "gauge", "1 when the console's last reading of the broker "
               "succeeded, 0 when the broker did not answer in time.", [({}, cluster.broker_ok)])
    out.family("taskops_reading_age_seconds", "gauge", "Age of the shared cluster reading these "
               "values come from.", [({}, _age(cluster.taken_at))])
    if cluster.broker_ok:
        out.family("taskops_broker_latency_seconds", "gauge", "Time the last broker reading took.",
                   [({}, cluster.latency_ms / 1000)])
    out.family("taskops_queue_depth", "gauge", "Messages waiting in a queue, all priority levels.",
               [({"queue": q.name}, q.depth) for q in cluster.queues if q.depth is not None])
    out.family("taskops_queue_paused", "gauge", "1 when the console paused consumption of the "
               "queue cluster-wide.", [({"queue": q.name}, q.paused) for q in cluster.queues])
    if cluster.in_flight_total is not None:
        out.family("taskops_queue_unacked", "gauge", "Messages taken by workers and not yet "
                   "acknowledged (prefetched, running or waiting for their ETA).",
                   [({}, cluster.in_flight_total)])
    out.family("taskops_workers_online", "gauge", "Workers that answered the console's last "
               "reading.", [({}, cluster.online_count)])
    out.family("taskops_worker_up", "gauge", "1 for a worker that answered the last reading, 0 for "
               "one the console saw before that did not.",
               [({"worker": w.name}, w.status == "online") for w in cluster.workers])
    out.family("taskops_runs_last_24h", "gauge", f"Task runs whose state last changed in the last "
               f"{hours}, by task and state (a sliding window, not a counter).",
               [({"task": task or "(none)", "state": state}, n) for task, state, n in db.runs])
    out.family("taskops_retries_last_24h", "gauge", f"Retries sent through the console in the last "
               f"{hours} (a sliding window, not a counter).", [({}, db.retries)])
    out.family("taskops_beat_last_sample_age_seconds", "gauge", "Seconds since beat's sampler last "
               "recorded queue depths (beat's heartbeat; +Inf when never).",
               [({}, _age(db.beat.last_sample_at))])
    out.family("taskops_beat_last_dispatch_age_seconds", "gauge", "Seconds since beat last sent "
               "a periodic task (beat's own record, else the newest run a schedule started; +Inf "
               "when never).", [({}, _age(db.beat.last_dispatch_at))])
    out.family("taskops_beat_due_not_sent", "gauge", "1 when schedules are due and beat has sent "
               "nothing since the first of them was due.", [({}, db.beat.due_not_sent)])
    out.family("taskops_schedules_late", "gauge", "Enabled schedules whose expected run did not "
               "happen within the grace period (missed: a later run is overdue too).",
               [({"state": state}, sum(1 for s in db.beat.late if s.state == state))
                for state in ("late", "missed")])
    out.family("taskops_schedules_enabled", "gauge", "Enabled periodic tasks.",
               [({}, db.beat.enabled_schedules)])
    return out.text()


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
    return HttpResponse(metrics_text(metrics_reading()), content_type=CONTENT_TYPE)
