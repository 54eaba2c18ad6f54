"""The built wheel installs into a fresh Django + Celery project (no console/, no TASKOPS_* setting) and works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.poll import poll_until
from tests.support.processes import BASE_DIR, RedisServer, stop_process_group

pytestmark = pytest.mark.stack

SETTINGS_TAIL = """

# --- Added by the host project to use Celery and TaskOps Console ---
INSTALLED_APPS = ["taskops", *INSTALLED_APPS, "django_celery_results", "django_celery_beat",
                  "import_export", "shop"]
CELERY_BROKER_URL = os.environ["HOST_BROKER_URL"]
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
"""
CELERY_APP = '''"""The host project's Celery app, as Celery's Django guide writes it."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
app = Celery("hostsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
'''
TASKS = '''"""A host project's own task."""
from celery import shared_task


@shared_task
def ship_order(order_id: int, express: bool = False) -> str:
    """Ship one order."""
    return f"shipped {order_id}"
'''
CHECK = textwrap.dedent('''
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    import taskops

    setup_test_environment()
    print("installed at", taskops.__file__)
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    schedule = PeriodicTask.objects.create(name="ship overnight", task="shop.tasks.ship_order",
                                           interval=every, args="[7]")
    client = Client()
    client.force_login(User.objects.get(username="boss"))
    for url, must_show in [("/admin/", "host-worker@"), ("/admin/taskops/taskrun/", "shop.tasks.ship_order"),
                           (f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/", "ship overnight"),
                           ("/admin/taskops/task/shop.tasks.ship_order/", "order_id")]:
        response = client.get(url)
        text = response.content.decode()
        print(url, response.status_code, must_show in text)
''')


def _run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_wheel_installs_into_a_new_project_and_shows_its_worker_runs_and_schedules(tmp_path):
    dist, venv, project = tmp_path / "dist", tmp_path / "venv", tmp_path / "host"
    _run(sys.executable, "-m", "pip", "wheel", str(BASE_DIR), "--no-deps", "-q", "-w", str(dist),
         cwd=tmp_path)
    wheel = next(dist.glob("taskops_console-*.whl"))
    _run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    _run(str(python), "-m", "pip", "install", "-q", str(wheel), cwd=tmp_path)
    project.mkdir()
    _run(str(bin_dir / "django-admin"), "startproject", "hostsite", str(project), cwd=tmp_path)
    _run(str(python), "manage.py", "startapp", "shop", cwd=project)
    (project / "hostsite" / "celery.py").write_text(CELERY_APP)
    (project / "hostsite" / "__init__.py").write_text("from .celery import app as celery_app\n")
    (project / "shop" / "tasks.py").write_text(TASKS)
    settings = project / "hostsite" / "settings.py"
    settings.write_text("import os\n" + settings.read_text() + SETTINGS_TAIL)
    assert "TASKOPS" not in settings.read_text()

    redis = RedisServer.start(tmp_path / "redis")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "TASKOPS_", "CELERY_", "DATABASE_URL"))}
    env.update(HOST_BROKER_URL=redis.url, PYTHONPATH=str(project))
    worker = None
    try:
        _run(str(python), "manage.py", "migrate", "-v", "0", cwd=project, env=env)
        _run(str(python), "manage.py", "shell", "-c",
             "from django.contrib.auth.models import User; "
             "User.objects.create_superuser('boss', password='x')", cwd=project, env=env)
        worker = subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "hostsite", "worker", "-n", "host-worker@%h", "-c", "1",
             "--without-mingle", "--without-gossip", "-l", "INFO"],
            cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        _run(str(python), "manage.py", "shell", "-c",
             "from shop.tasks import ship_order; ship_order.delay(41)", cwd=project, env=env)
        poll_until(lambda: "SUCCESS" in _run(
            str(python), "manage.py", "shell", "-c",
            "from django_celery_results.models import TaskResult; "
            "print(list(TaskResult.objects.values_list('status', flat=True)))", cwd=project, env=env),
            timeout=60, interval=1, message="the host's task ran and its result is stored")

        seen = _run(str(python), "manage.py", "shell", "-c", CHECK, cwd=project, env=env)
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            stop_process_group(worker)
        redis.stop()

    answers = [line.split()[1:] for line in seen.strip().splitlines() if line.startswith("/admin/")]
    assert answers == [["200", "True"]] * 4, seen
    assert f"installed at {venv}" in seen and "site-packages" in seen, seen  # not this checkout
