"""`make run`'s supervisor as a user runs it: stack up, demo schedule fires, Ctrl-C leaves nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

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


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=5) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


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
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert self.process.wait(timeout=40) == 0, self.log_text()[-3000:]
        groups = _process_groups()
        leftovers = {pgid: groups[pgid] for pgid in self.pids.values() if pgid in groups}
        assert leftovers == {}, f"processes left behind: {leftovers}"
        assert _get(self.url("/admin/login/")) == 0

    def __exit__(self, *exc) -> None:
        # If the test failed midway, do not leak the stack's processes into the rest of the run.
        for pgid in [self.process.pid, *self.pids.values()]:
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
