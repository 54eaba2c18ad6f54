"""Task ids, queue and worker names chosen by senders and workers render and link on every page."""

from __future__ import annotations

import html
import re
import socket
import uuid
from urllib.parse import unquote, urlsplit

import pytest
from django.urls import resolve, reverse
from django_celery_results.models import TaskResult

from taskops.control import worker_snapshots
from tests.support.poll import poll_until
from tests.support.processes import WorkerProcess
from tests.support.tasks import send

pytestmark = pytest.mark.django_db(transaction=True)

# What a sender may choose: a slash, percent escapes that must not be decoded twice, a query,
# a fragment, spaces, accents, the converter's own escape character and a dot segment.
ODD = "odd/x %41%2F?a=1&b#frag é ~2F ü"


def _links(page: str) -> list[tuple[str, str]]:
    """("href" or "action", path) of every link and form into the admin on `page`."""
    found = re.findall(r'\b(href|action)="(/admin/[^"]*)"', page)
    return [(kind, html.unescape(url)) for kind, url in found]


@pytest.fixture
def odd_worker(isolated_broker, test_database_url, tmp_path):
    """A real worker whose node name holds a slash, a query and a fragment, consuming an odd queue."""
    queue = f"{ODD} {uuid.uuid4().hex[:6]}"
    name = f"w/{uuid.uuid4().hex[:6]} ?q#é@{socket.gethostname()}"
    var_dir = tmp_path / "workers"
    (var_dir / "w").mkdir(parents=True)  # the harness names the worker's log after the node
    worker = WorkerProcess(name=name, broker_url=isolated_broker.url, database_url=test_database_url,
                           var_dir=var_dir, queues=(queue,)).start()
    yield worker, queue
    worker.stop()


def test_odd_task_ids_and_queue_and_worker_names_render_and_link_everywhere(odd_worker, role_client):
    worker, queue = odd_worker
    done_id, running_id, failed_id = (f"{ODD} {kind} {uuid.uuid4().hex[:6]}"
                                      for kind in ("done", "running", "failed"))
    send("demo.tasks.slow_task", kwargs={"seconds": 0.05, "step": 0.05}, queue=queue, task_id=done_id)
    poll_until(lambda: TaskResult.objects.filter(task_id=done_id, status="SUCCESS").exists(),
               message="the run with an odd id finished")
    send("demo.tasks.slow_task", kwargs={"seconds": 120, "step": 0.5}, queue=queue, task_id=running_id)
    poll_until(lambda: any(t.id == running_id for t in
                           worker_snapshots([worker.name], detail=True)[worker.name].active),
               message="the worker runs the task with an odd id")
    TaskResult.objects.create(task_id=failed_id, task_name="demo.tasks.flaky_call", status="FAILURE",
                              worker=worker.name)
    client = role_client("superuser")

    pages = {
        "dashboard": reverse("admin:index"),
        "queue list": reverse("admin:taskops_queue_changelist"),
        "queue page": reverse("admin:taskops_queue_detail", args=[queue]),
        "worker list": reverse("admin:taskops_worker_changelist"),
        "worker page": reverse("admin:taskops_worker_detail", args=[worker.name]),
        "run list": reverse("admin:taskops_taskrun_changelist"),
        "run page": reverse("admin:taskops_taskrun_detail", args=[done_id]),
        "failed run page": reverse("admin:taskops_taskrun_detail", args=[failed_id]),
    }
    linked = set()
    followed = set()
    for label, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, (label, url, response.status_code)
        for kind, link in _links(response.content.decode()):
            match = resolve(unquote(urlsplit(link).path))
            linked |= {(match.url_name, value) for value in match.kwargs.values()}
            if kind == "href" and "export" not in link and link not in followed:
                followed.add(link)
                assert client.get(link).status_code < 400, (label, link)

    # Every name comes back unchanged from the links that carry it.
    assert ("taskops_queue_detail", queue) in linked
    assert ("taskops_queue_purge", queue) in linked
    assert ("taskops_worker_detail", worker.name) in linked
    assert ("taskops_worker_shutdown", worker.name) in linked
    assert {("taskops_taskrun_detail", done_id), ("taskops_taskrun_detail", failed_id),
            ("taskops_taskrun_retry", done_id)} <= linked
    running_page = client.get(reverse("admin:taskops_taskrun_detail", args=[running_id]))
    assert running_page.status_code == 200
    listing = client.get(reverse("admin:taskops_taskrun_changelist"), {"queue": queue})
    assert listing.status_code == 200 and html.escape(done_id) in listing.content.decode()

