"""What the live pages call a worker, a waiting, in-flight or stranded message and an idle queue, on the in-memory cluster.

The live cross-check against Celery's inspect and Redis is tests/integration/test_cross_check.py;
here each rule's words are checked where they are shown, one situation at a time.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from taskops.capture import CapturedCall
from taskops.models import AuditEntry, PendingRevoke, QueuePause, QueueSeen, WorkerSeen
from taskops.publish import Send
from taskops.selectors.live import cluster_reading
from taskops.services import ActionRefused, cluster_sample, queue_stranded_restore, worker_came_online

pytestmark = pytest.mark.django_db

REPORT = "demo.tasks.generate_report"


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def publish(fake, queue: str, **options) -> str:
    task_id = str(uuid.uuid4())
    fake.publish.calls_publish([Send(task_id, CapturedCall(REPORT, ["x"], {}, routing_key=queue))],
                               **options)
    return task_id


def worker_seen(name: str, **facts) -> WorkerSeen:
    return WorkerSeen.objects.create(name=name, last_seen_at=timezone.now(), **facts)


def state_on_list(client, name: str) -> str:
    page = client.get(reverse("admin:taskops_worker_changelist")).content.decode()
    found = re.search(rf'data-worker-state="{re.escape(name)}"><span class="taskops-badge [^"]*"[^>]*>([^<]+)<',
                      page)
    return found.group(1) if found else ""


# --- Workers ------------------------------------------------------------------------------------


def test_each_state_is_shown_with_how_long_and_the_worker_page_says_the_same(fake_cluster, role_client):
    client = role_client("Operations")
    fake_cluster.worker_add("up@h", "default")
    fake_cluster.worker_add("frozen@h", "default", answers=False)
    worker_seen("up@h", started_at=ago(minutes=5))
    worker_seen("frozen@h", started_at=ago(minutes=5), last_answered_at=ago(seconds=20))
    worker_seen("booting@h", started_at=ago(seconds=2))
    worker_seen("stopping@h", started_at=ago(minutes=5), stopping_since=ago(seconds=7))
    worker_seen("gone@h", online=False, started_at=ago(minutes=5), goodbye_at=ago(seconds=30))
    worker_seen("killed@h", started_at=ago(minutes=5), last_answered_at=ago(minutes=10))

    expected = {"up@h": "online", "frozen@h": "not answering", "booting@h": "starting",
                "stopping@h": "stopping", "gone@h": "offline", "killed@h": "offline"}
    assert {name: state_on_list(client, name) for name in expected} == expected
    for name, state in expected.items():
        page = client.get(reverse("admin:taskops_worker_detail", args=[name])).content.decode()
        assert f'data-worker-state="{name}"' in page and f">{state}<" in page, (name, state)
    frozen = client.get(reverse("admin:taskops_worker_detail", args=["frozen@h"])).content.decode()
    assert "busy or frozen" in frozen and re.search(r"</span> for 2\d s", frozen)  # since its last answer
    gone = client.get(reverse("admin:taskops_worker_detail", args=["gone@h"])).content.decode()
    assert "said goodbye" in gone and re.search(r"</span> for 3\d s", gone)  # since its goodbye
    # Only the worker that does not answer is in the banner: not the starting or stopping ones.
    banner = next(b for b in cluster_reading().banners if b.startswith("Not answering"))
    assert "frozen@h" in banner and "booting@h" not in banner and "stopping@h" not in banner


def test_processed_is_named_tasks_started(fake_cluster, role_client):
    fake_cluster.worker_add("up@h", "default")
    client = role_client("Operations")

    for page in (client.get(reverse("admin:taskops_worker_changelist")),
                 client.get(reverse("admin:taskops_worker_detail", args=["up@h"]))):
        text = page.content.decode()
        assert "Tasks started" in text and "Processed" not in text


@pytest.mark.db_engine  # the sampler's inserts that skip existing rows (ON CONFLICT)
def test_the_sampler_marks_a_worker_offline_only_after_the_stated_silence(fake_cluster, settings):
    settings.TASKOPS_WORKER_OFFLINE_AFTER_SECONDS = 60
    fake_cluster.worker_add("frozen@h", "default", answers=False)
    fake_cluster.worker_add("killed@h", "default", answers=False)
    worker_seen("frozen@h", started_at=ago(hours=1), last_answered_at=ago(seconds=15))
    worker_seen("killed@h", started_at=ago(hours=1), last_answered_at=ago(seconds=61))

    cluster_sample(queue_names=["default"])

    online = dict(WorkerSeen.objects.values_list("name", "online"))
    assert online == {"frozen@h": True, "killed@h": False}


@pytest.mark.db_engine  # select_for_update of the pauses
def test_a_worker_started_while_a_queue_is_paused_is_recorded_without_it(db):
    QueuePause.objects.create(queue="paused-q")

    plan = worker_came_online(name="w@h", queues=["paused-q", "other-q"])

    assert plan.hold_queues == ("paused-q",)
    assert WorkerSeen.objects.get(name="w@h").queues == ["other-q"]
    assert QueueSeen.objects.get(queue="other-q").last_consumed_at is not None
    assert not QueueSeen.objects.filter(queue="paused-q").exists()


# --- Queues -------------------------------------------------------------------------------------


def test_next_messages_tell_ready_eta_and_revoked_ones_apart(fake_cluster, role_client):
    client = role_client("Operations")
    ready = publish(fake_cluster, "default")
    later = publish(fake_cluster, "default", countdown=600)
    doomed = publish(fake_cluster, "default")
    PendingRevoke.objects.create(task_id=doomed, task_name=REPORT)

    page = client.get(reverse("admin:taskops_queue_detail", args=["default"])).content.decode()

    def row(task_id: str) -> str:
        return re.search(rf'data-waiting="{task_id}">.*?</tr>', page, re.S).group(0)

    assert ">ready<" in row(ready) and "data-revoked" not in row(ready)
    assert ">ETA<" in row(later) and "holds it until then" in row(later)
    assert "data-revoked" in row(doomed) and "discards it" in row(doomed)


def test_a_message_held_by_no_worker_is_stranded_and_can_be_returned(fake_cluster, role_client, actor):
    client = role_client("Operations")
    fake_cluster.worker_add("up@h", "default")
    lost = publish(fake_cluster, "default")
    fake_cluster.message_take("default", taken_at=ago(minutes=3))

    reading = cluster_reading()
    row = reading.queue("default")
    assert (row.in_flight, row.stranded) == (1, 1)
    assert row.stranded_back_at == row.stranded_since + timedelta(seconds=reading.visibility_timeout)
    page = client.get(reverse("admin:taskops_queue_detail", args=["default"])).content.decode()
    assert 'data-queue-stranded="default">1 stranded' in page and "Return 1 to the queue now" in page

    with pytest.raises(ActionRefused, match="needs a reason"):
        queue_stranded_restore(actor=actor, queue="default")
    outcome = queue_stranded_restore(actor=actor, queue="default", reason="its worker was killed")

    assert outcome.ok and outcome.detail == {"stranded": 1, "restored": 1, "task_ids": [lost]}
    assert fake_cluster.unacked == {}
    assert [m.id for m in fake_cluster.broker.queue_peek("default")] == [lost]
    assert list(AuditEntry.objects.order_by("pk").values_list("action", "outcome")) == [
        ("queue.restore", "refused"), ("queue.restore", "ok")]


def test_a_message_a_live_or_silent_worker_may_hold_is_not_stranded(fake_cluster, actor):
    fake_cluster.worker_add("up@h", "default")
    held = publish(fake_cluster, "default")
    fake_cluster.message_take("default", taken_at=ago(minutes=3))
    fake_cluster.task_running("up@h", held, REPORT, ["x"], {}, "default")
    assert cluster_reading().queue("default").stranded == 0  # the worker reports it

    fake_cluster.worker_add("frozen@h", "default", answers=False)
    worker_seen("frozen@h", started_at=ago(hours=1), last_answered_at=ago(seconds=10))
    publish(fake_cluster, "default")
    fake_cluster.message_take("default", taken_at=ago(minutes=3))
    cache.clear()  # a new reading

    assert cluster_reading().queue("default").stranded == 0  # the frozen worker may hold it
    with pytest.raises(ActionRefused, match="No message of default is stranded"):
        queue_stranded_restore(actor=actor, queue="default", reason="try anyway")
    assert len(fake_cluster.unacked) == 2


def test_queues_nobody_consumed_for_long_are_listed_as_idle(fake_cluster, role_client, settings):
    settings.TASKOPS_QUEUE_IDLE_HOURS = 24
    client = role_client("Operations")
    fake_cluster.worker_add("up@h", "default")
    fake_cluster.declared.update({"old-binding", "new-binding", "waiting-q"})
    QueueSeen.objects.create(queue="old-binding", first_seen_at=ago(days=3), last_consumed_at=ago(days=2))
    QueueSeen.objects.create(queue="new-binding", first_seen_at=ago(hours=1))
    QueueSeen.objects.create(queue="waiting-q", first_seen_at=ago(days=3))
    publish(fake_cluster, "waiting-q")  # something waits: it needs a consumer, not idle

    reading = cluster_reading()
    assert [q.name for q in reading.idle_queues] == ["old-binding"]
    dashboard = client.get(reverse("admin:index")).content.decode()
    main, idle = dashboard.split("data-idle-queues")
    assert 'data-queue-state="old-binding"' not in main and 'data-queue-state="old-binding"' in idle
    assert "2 days ago" in idle.split("</details>")[0] or "2\xa0days ago" in idle.split("</details>")[0]
    for listed in ("new-binding", "waiting-q"):
        assert f'data-queue-state="{listed}"><span class="taskops-badge warn">no consumer' in main
    assert 'data-queue-state="default"><span class="taskops-badge ok">consuming' in main
