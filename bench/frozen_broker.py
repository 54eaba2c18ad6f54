"""Benchmark `make run-prod` with many viewers while the broker (and the cache on its Redis) is frozen: latency and banner."""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness import BASE_DIR, admin_login, percentile

sys.path.insert(0, str(BASE_DIR))

from tests.support.processes import free_port  # noqa: E402  (after BASE_DIR is importable)

TICK = 2.0  # every viewer is a dashboard refreshing itself every 2 s
REQUEST_TIMEOUT = 30.0
BANNER = "The broker is not answering"
PROMISE_SECONDS = 3.0
USERNAME, PASSWORD = "admin", "demo"  # the demo's superuser (make run seeds it)


def _session_dying_with_us() -> None:
    """preexec_fn: own process group (stopped whole), SIGKILLed if the bench itself dies (Linux)."""
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def wait_for(check, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


@dataclass
class Phase:
    name: str
    viewers: int
    latencies: list[float] = field(default_factory=list)
    banners: int = 0
    errors: list[str] = field(default_factory=list)

    def row(self) -> str:
        ms = [1000 * seconds for seconds in self.latencies]
        p50, p95 = (percentile(ms, 0.5), percentile(ms, 0.95)) if ms else (float("nan"),) * 2
        return (f"| {self.name} | {self.viewers} | {len(ms)} | {p50:.0f} | {p95:.0f} | "
                f"{max(ms, default=float('nan')):.0f} | {self.banners} | {len(self.errors)} |")


def run_phase(name: str, base: str, cookie: str, viewers: int, seconds: float) -> Phase:
    """`viewers` threads refresh the dashboard (its live fragment) on their own 2 s ticks for `seconds`."""
    phase = Phase(name, viewers)
    started = time.monotonic()
    lock = threading.Lock()

    def viewer() -> None:
        tick = started + random.uniform(0, TICK)
        while tick < started + seconds:
            time.sleep(max(0.0, tick - time.monotonic()))
            request = urllib.request.Request(f"{base}/admin/",
                                             headers={"Cookie": cookie, "X-TaskOps-Live": "1"})
            began = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                    body = response.read().decode(errors="replace")
                with lock:
                    phase.latencies.append(time.monotonic() - began)
                    phase.banners += BANNER in body
            except OSError as exc:
                with lock:
                    phase.errors.append(f"{type(exc).__name__}: {exc}")
            tick += TICK

    threads = [threading.Thread(target=viewer) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="taskops-frozen-") as tmp:
        web_port = free_port()
        env = {**os.environ, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
               "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3", "TASKOPS_VAR_DIR": tmp,
               "TASKOPS_WEB_PORT": str(web_port), "DJANGO_SECRET_KEY": "bench-only-secret-key"}
        log_path = Path(tmp) / "devstack.log"
        print(f"make run-prod in {tmp} (log: {log_path})", file=sys.stderr)
        with log_path.open("wb") as log:
            stack = subprocess.Popen([sys.executable, "scripts/devstack.py", "--prod", "--no-demo-tasks"],
                                     cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=_session_dying_with_us)
        try:
            wait_for(lambda: "TaskOps Console is up" in log_path.read_text(errors="replace"),
                     "the stack", 240)
            wait_for(lambda: " ready." in log_path.read_text(errors="replace"), "the worker", 120)
            redis_pid = json.loads((Path(tmp) / "devstack.json").read_text())["redis"]
            base = f"http://127.0.0.1:{web_port}"
            cookie = admin_login(base, USERNAME, PASSWORD, REQUEST_TIMEOUT)
            run_phase("warm-up", base, cookie, 1, 2 * TICK)
            print(f"healthy broker: {args.viewers} viewers for {args.seconds:.0f} s", file=sys.stderr)
            phases = [run_phase("broker healthy", base, cookie, args.viewers, args.seconds)]
            print(f"broker frozen (SIGSTOP redis-server {redis_pid})", file=sys.stderr)
            os.kill(redis_pid, signal.SIGSTOP)
            try:
                phases.append(run_phase("broker frozen", base, cookie, args.viewers, args.seconds))
            finally:
                os.kill(redis_pid, signal.SIGCONT)
        finally:
            stack.send_signal(signal.SIGINT)
            try:
                stack.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)

    print(f"\nmake run-prod (gunicorn 2 x 8 threads), {args.viewers} viewers each refreshing the "
          f"dashboard every {TICK:.0f} s for {args.seconds:.0f} s\n")
    print("| phase | viewers | requests | p50 ms | p95 ms | max ms | with banner | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for phase in phases:
        print(phase.row())
    healthy, frozen = phases
    p95 = percentile([1000 * s for s in frozen.latencies], 0.95) / 1000 if frozen.latencies else float("inf")
    print(f"\nfrozen / healthy p95: x{p95 * 1000 / percentile([1000 * s for s in healthy.latencies], 0.95):.1f}; "
          f"the promise (p95 under {PROMISE_SECONDS:.0f} s with the broker frozen): "
          f"{'held' if p95 < PROMISE_SECONDS and not frozen.errors else 'NOT held'}")
    for error in sorted(set(frozen.errors + healthy.errors))[:5]:
        print(f"error: {error}")
    return 0 if p95 < PROMISE_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
