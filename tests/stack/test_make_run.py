"""`make run`'s supervisor as a user runs it: stack up, demo schedule fires, crashed children started again, running tasks finished and the queue kept across Ctrl-C, nothing left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from celery import Celery

from tests.support.poll import poll_until
from tests.support.processes import BASE_DIR, free_port

pytestmark = pytest.mark.stack


def _process_groups() -> dict[int, list[str]]:
    """Every live process's group id -> its command lines, read from /proc."""
    groups: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        groups.setdefault(int(fields[2]), []).append(cmdline)
    return groups


def _rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=5) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []


def _state(db: Path, task_id: str) -> str | None:
    rows = _rows(db, "SELECT status FROM django_celery_results_taskresult WHERE task_id = ?", (task_id,))
    return rows[0][0] if rows else None


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return 0


class Stack:
    """scripts/devstack.py started as `make run` starts it, on free ports, in a temp folder."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None):
        self.tmp_path = tmp_path
        self.web_port, redis_port = free_port(), free_port()
        self.db = tmp_path / "stack.sqlite3"
        self.env = {
            **os.environ,
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",  # nothing there: embedded
            "DATABASE_URL": f"sqlite:///{self.db}",
            "TASKOPS_VAR_DIR": str(tmp_path),
            "TASKOPS_WEB_PORT": str(self.web_port),
            "DJANGO_DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "console.settings",
            **(env or {}),
        }
        self.log_path = tmp_path / "devstack.log"
        self.args = args
        self.pids: dict[str, int] = {}
        self.process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    @property
    def broker_url(self) -> str:
        return self.env["CELERY_BROKER_URL"]

    def current_pids(self) -> dict[str, int]:
        """Each child's process (group) id now (devstack rewrites the file when it restarts one)."""
        return json.loads((self.tmp_path / "devstack.json").read_text())

    def send(self, name: str, **options) -> str:
        """Publish a task to the stack's broker as any client would; return its id."""
        app = Celery("stack-test", broker=self.broker_url, set_as_current=False)
        app.conf.update(task_serializer="json", accept_content=["json"])
        with app.connection_for_write() as connection:
            return app.send_task(name, connection=connection, queue="default", **options).id

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Stack:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(BASE_DIR / "scripts" / "devstack.py"), *self.args],
                cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        poll_until(lambda: "TaskOps Console is up" in self.log_text() or self.process.poll() is not None,
                   timeout=120, message="devstack reports the console is up")
        assert self.process.poll() is None, self.log_text()[-3000:]
        self.pids = json.loads((self.tmp_path / "devstack.json").read_text())
        return self

    def interrupt_and_check_nothing_is_left(self) -> None:
        self.pids = self.current_pids()  # children started again have new ones
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert self.process.wait(timeout=40) == 0, self.log_text()[-3000:]
        groups = _process_groups()
        leftovers = {pgid: groups[pgid] for pgid in self.pids.values() if pgid in groups}
        assert leftovers == {}, f"processes left behind: {leftovers}"
        assert _get(self.url("/admin/login/")) == 0

    def __exit__(self, *exc) -> None:
        # If the test failed midway, do not leak the stack's processes into the rest of the run
        # (those started again included: devstack.json has their ids until devstack stops).
        try:
            current = list(self.current_pids().values())
        except (OSError, ValueError):
            current = []
        for pgid in {self.process.pid, *self.pids.values(), *current}:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


def test_make_run_brings_up_the_stack_and_ctrl_c_stops_every_process(tmp_path):
    # The demo health check fires every 3 s instead of 30 (DEMO_HEALTH_CHECK_SECONDS).
    with Stack(tmp_path, env={"DEMO_HEALTH_CHECK_SECONDS": "3"}) as stack:
        assert "embedded Redis answering" in stack.log_text()
        assert _get(stack.url("/admin/login/")) == 200
        assert set(stack.pids) == {"redis", "worker", "beat", "web"}

        # The demo's health check schedule fires through beat and the worker stores its run.
        periodic = poll_until(
            lambda: _rows(stack.db, "SELECT task_name, task_kwargs FROM django_celery_results_taskresult "
                                    "WHERE periodic_task_name = 'Partner API health check'"),
            timeout=90, interval=1, message="a run of the demo periodic task is stored",
        )
        assert periodic[0][0] == "demo.tasks.flaky_call"
        assert "partner-api/health" in periodic[0][1]
        # The seeded failing call ends in FAILURE with its traceback.
        failed = poll_until(
            lambda: _rows(stack.db, "SELECT traceback FROM django_celery_results_taskresult "
                                    "WHERE status = 'FAILURE' AND task_kwargs LIKE '%4242%'"),
            timeout=60, interval=1, message="the seeded failing task stored its traceback",
        )
        assert "PartnerServiceError" in failed[0][0]

        stack.interrupt_and_check_nothing_is_left()


def test_production_profile_serves_through_gunicorn_with_hashed_static_files(tmp_path):
    with Stack(tmp_path, "--prod", "--no-demo-tasks", env={"DJANGO_SECRET_KEY": "stack-test-key"}) as stack:
        assert "running collectstatic" in stack.log_text()
        assert "gunicorn" in " ".join(_process_groups().get(stack.pids["web"], []))
        with urllib.request.urlopen(stack.url("/admin/login/"), timeout=5) as response:
            html = response.read().decode()
        css = re.search(r'/static/console/branding\.[0-9a-f]{12}\.css', html)
        assert css, "the login page links the manifest-hashed stylesheet"
        with urllib.request.urlopen(stack.url(css.group(0)), timeout=5) as response:
            assert response.status == 200
            assert "immutable" in response.headers["Cache-Control"]

        stack.interrupt_and_check_nothing_is_left()


def test_make_run_restarts_what_crashed_finishes_running_tasks_on_ctrl_c_and_keeps_the_queue(tmp_path):
    with Stack(tmp_path, "--no-demo-tasks") as stack:
        # The logins are printed once more when the stack is ready, each with its start page.
        log = poll_until(lambda: "a second Ctrl-C kills at once" in (text := stack.log_text()) and text,
                         timeout=10, message="devstack says the stack is ready")
        ready = log[log.index("TaskOps Console is up"):]
        for username, start in (("admin", "/admin/"), ("support", "/admin/taskops/taskrun/?status__exact=FAILURE"),
                                ("ops", "/admin/"), ("manager", "/admin/taskops/report/")):
            assert f"{username:<8} / demo" in ready and stack.url(start) in ready, ready

        # A worker that dies is started again; the web server keeps answering.
        poll_until(lambda: " ready." in stack.log_text(), timeout=60, message="the worker is ready")
        worker = stack.pids["worker"]
        os.killpg(worker, signal.SIGKILL)
        poll_until(lambda: "worker exited with code -9: starting it again in 1 s" in stack.log_text(),
                   timeout=30, message="devstack restarts the killed worker")
        assert _get(stack.url("/admin/login/")) == 200
        poll_until(lambda: stack.current_pids()["worker"] != worker
                   and stack.log_text().count(" ready.") >= 2, timeout=60,
                   message="the new worker is ready")

        # Redis killed outright: started again (its data kept), the worker survives it.
        os.killpg(stack.pids["redis"], signal.SIGKILL)
        poll_until(lambda: "redis exited with code -9: starting it again in 1 s" in stack.log_text(),
                   timeout=30, message="devstack restarts the killed Redis")
        assert _get(stack.url("/admin/login/")) == 200
        poll_until(lambda: stack.log_text().count("Connected to redis") >= 3, timeout=60,
                   message="the worker reconnects to the Redis started again")
        assert "Unrecoverable error" not in stack.log_text()

        # Ctrl-C while a 5 s task runs: the worker finishes it first (warm shutdown).
        later = stack.send("demo.tasks.send_email", args=[7, "later"], countdown=15)
        running = stack.send("demo.tasks.slow_task", kwargs={"seconds": 5, "step": 0.5})
        poll_until(lambda: _state(stack.db, running) in ("STARTED", "PROGRESS"), timeout=60,
                   message="the 5 s task runs")
        time.sleep(2)  # Ctrl-C 2 s into the task, as a user would
        stack.interrupt_and_check_nothing_is_left()
        assert _state(stack.db, running) == "SUCCESS", stack.log_text()[-3000:]
        assert _state(stack.db, later) is None

    # The countdown task waited in Redis across the restart, and runs.
    with Stack(tmp_path, "--no-demo-tasks") as stack:
        poll_until(lambda: _state(stack.db, later) == "SUCCESS", timeout=60,
                   message="the countdown task queued before the restart runs")
        stack.interrupt_and_check_nothing_is_left()
