"""The suite launcher behind `make run` and the system tests: start every service in dependency order,
wait until each is ready, prefix its log lines with its name, restart one that exits unexpectedly (with a
back-off and a limit, as an orchestrator would), and stop them all with no orphan left."""

import collections
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from titanium_common.catalog import CATALOGUE, Service

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
LOG_LINES_KEPT = 20_000


@dataclass(frozen=True)
class RestartPolicy:
    """A service that exits unexpectedly is started again after `first_delay_s`, doubling up to `max_delay_s` for
    each further exit; after `limit` restarts within `window_s` it stays down (and the log says so). A service that
    ran for `stable_after_s` starts its back-off again from the first delay."""

    first_delay_s: float = 0.2
    max_delay_s: float = 10.0
    limit: int = 5
    window_s: float = 300.0
    stable_after_s: float = 30.0


@dataclass
class _Restarts:
    times: list[float]
    delay_s: float
    due: float | None = None
    gave_up: bool = False


# What the launcher starts, each after what it starts after (the catalogue's start order).
SERVICES: tuple[Service, ...] = CATALOGUE.start_order()


class StartupError(RuntimeError):
    pass


def replica_name(service: str, k: int) -> str:
    """The first replica has the service's name; the others `<service>-2`, `<service>-3`, ..."""
    return service if k == 0 else f"{service}-{k + 1}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As the servers themselves bind: a stopped service's TIME_WAIT connections must not count as "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    """Children get SIGTERM if the launcher dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class ManagedProcess:
    """One child process whose output is kept (bounded) and echoed with a name prefix."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], echo: TextIO | None, lock: threading.Lock):
        self.name = name
        self.argv = argv
        self.env = env
        self.echo = echo
        self.lock = lock
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        # False once the launcher stops it on purpose: only an unexpected exit is restarted.
        self.wanted = True
        self.started_at = 0.0

    def start(self) -> None:
        self.wanted = True
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._reader = threading.Thread(target=self._pump, name=f"log-{self.name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc and self.proc.stdout
        width = 16
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if self.echo is not None:
                with self.lock:
                    self.echo.write(f"{self.name:<{width}}| {line}\n")
                    self.echo.flush()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self.wanted = False
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)

    def tail(self, n: int = 30) -> str:
        return "\n".join(list(self.lines)[-n:])


def start_redis_server(server: str, port: int, lock: "threading.Lock | None" = None) -> ManagedProcess:
    """A private, memory-only `redis-server` on a loopback port, running once it accepts connections."""
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = ManagedProcess("redis", argv, dict(os.environ), None, lock or threading.Lock())
    redis.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return redis
        except OSError:
            if not redis.running:
                raise StartupError(f"redis-server failed:\n{redis.tail()}") from None
            time.sleep(0.05)
    redis.stop()
    raise StartupError(f"redis-server did not accept connections on port {port} within 10 s")


class StartedInBlock:
    """`with thing:` starts it and stops it at the end; a start that fails half-way stops what it started."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Suite(StartedInBlock):
    """The whole suite as child processes on loopback; a context manager for tests."""

    def __init__(
        self,
        *,
        ports: dict[str, int] | None = None,
        data_dir: Path | None = None,
        redis_url: str | None = None,
        start_redis: bool = True,
        extra_env: dict[str, str] | None = None,
        echo: TextIO | None = sys.stdout,
        services: tuple[Service, ...] = SERVICES,
        replicas: int = 1,
        restart: RestartPolicy | None = None,
    ) -> None:
        if replicas < 1:
            raise StartupError(f"REPLICAS must be at least 1, not {replicas}")
        self.services = services
        self.replicas = replicas
        self.restart = restart
        self._restarts: dict[str, _Restarts] = {}
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self.ports = {s.name: s.port for s in services} | (ports or {})
        for spec in services:
            for k in range(1, replicas):
                self.ports.setdefault(replica_name(spec.name, k), self.ports[spec.name] + k * spec.replica_port_step)
        self.data_dir = (data_dir or REPO_ROOT / ".data").resolve()
        self.redis_url = redis_url
        self.start_redis = start_redis and not redis_url
        self.extra_env = extra_env or {}
        self.echo = echo
        self.lock = threading.Lock()
        self.processes: dict[str, ManagedProcess] = {}
        self.redis: ManagedProcess | None = None
        # In development auth-service would make up a secret per process: every replica, and a replica the launcher
        # restarts, must sign and check tokens with the same one, so the launcher makes it once per run.
        self.development_jwt_secret = secrets.token_urlsafe(48)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def replica_names(self, service: str) -> list[str]:
        return [replica_name(service, k) for k in range(self.replicas)]

    def check_replicas(self) -> None:
        """Several replicas share their state through PostgreSQL and Redis: refuse what cannot work."""
        if self.replicas == 1:
            return
        database_url = self.extra_env.get("DATABASE_URL", os.environ.get("DATABASE_URL", ""))
        if not database_url.startswith(("postgresql", "postgres:")):
            raise StartupError(
                f"REPLICAS={self.replicas} needs PostgreSQL: set DATABASE_URL=postgresql://... (on SQLite two "
                "processes cannot share one database file safely)"
            )
        if not self.redis_url and not (self.start_redis and shutil.which("redis-server")):
            raise StartupError(
                f"REPLICAS={self.replicas} needs Redis for the shared figures and leases: set REDIS_URL or install "
                "redis-server"
            )

    def say(self, message: str) -> None:
        if self.echo is not None:
            with self.lock:
                self.echo.write(f"{'titanium':<16}| {message}\n")
                self.echo.flush()

    def _start_redis(self) -> None:
        if self.redis_url:
            self.say(f"cache: Redis at {self.redis_url}")
            return
        server = shutil.which("redis-server") if self.start_redis else None
        if server is None:
            self.say("cache: off (no REDIS_URL and no redis-server installed); services read the database")
            return
        port = free_port()
        self.redis = start_redis_server(server, port, self.lock)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.say(f"cache: started redis-server on port {port}")

    def env_for(self, spec: Service, name: str | None = None) -> dict[str, str]:
        name = name or spec.name
        env = dict(os.environ)
        env.update(
            {
                "ENV": env.get("ENV", "development"),
                "HOST": "127.0.0.1",
                "PORT": str(self.ports[name]),
                "DATA_DIR": str(self.data_dir),
                "REDIS_URL": self.redis_url or "",
                "PYTHONUNBUFFERED": "1",
            }
        )
        # The pools balance over every replica (the balancer's over the gateways and dashboards, the gateway's over
        # each service's replicas); a plain client of a service (auth → user, the /stats fan-out) takes the first.
        for s in self.services:
            names = self.replica_names(s.name) if spec.name in s.pooled_by else [s.name]
            env[s.url_setting] = ",".join(self.url(n) for n in names)
        if self.replicas > 1:
            env["REPLICA_NAME"] = name
        # edge-config refuses device addresses that are the suite's own services.
        env["SUITE_URLS"] = ",".join(self.url(n) for s in self.services for n in self.replica_names(s.name))
        env.update(self.extra_env)
        if env["ENV"] == "development" and not env.get("JWT_SECRET"):
            env["JWT_SECRET"] = self.development_jwt_secret
        return env

    def _launch(self, spec: Service, name: str | None = None) -> None:
        name = name or spec.name
        port = self.ports[name]
        if not port_is_free(port):
            raise StartupError(f"{name}: port {port} is already in use (another suite running?)")
        process = ManagedProcess(
            name, [sys.executable, "-m", spec.module], self.env_for(spec, name), self.echo, self.lock
        )
        self.processes[name] = process
        process.start()

    def spec_of(self, name: str) -> Service:
        return next(s for s in self.services if name in self.replica_names(s.name))

    def start_service(self, name: str, timeout: float = READY_TIMEOUT_S) -> None:
        self._launch(self.spec_of(name), name)
        self.wait_ready(name, timeout)

    def stop_service(self, name: str) -> None:
        self.processes[name].stop()

    def wait_ready(self, name: str, timeout: float = READY_TIMEOUT_S) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.running:
                raise StartupError(f"{name} exited with code {process.proc.returncode}:\n{process.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url(name)}/ready", timeout=1) as answer:
                    # Only our own child counts: another process on the port must not pass for it.
                    service = self.spec_of(name).name
                    if answer.status == 200 and json.load(answer).get("service") == service and process.running:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.1)
        raise StartupError(f"{name} not ready within {timeout:.0f} s:\n{process.tail()}")

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start in waves: a service starts once everything it comes after is ready."""
        self.check_replicas()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._start_redis()
        pending = list(self.services)
        names = {s.name for s in self.services}
        while pending:
            wave = [s for s in pending if all(d in self.processes or d not in names for d in s.after)]
            for spec in wave:
                for name in self.replica_names(spec.name):
                    self._launch(spec, name)
            for spec in wave:
                for name in self.replica_names(spec.name):
                    self.wait_ready(name, timeout)
                    self.say(f"{name} ready on {self.url(name)}")
                pending.remove(spec)
        if self.restart is not None:
            self._supervisor = threading.Thread(target=self._supervise, name="suite-supervisor", daemon=True)
            self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(0.1):
            with contextlib.suppress(Exception):  # one failed restart must not end the supervision
                self.restart_exited(time.monotonic())

    def restart_exited(self, now: float) -> None:
        """Restart what exited unexpectedly and is due (the supervisor thread calls this every 0.1 s)."""
        policy = self.restart
        assert policy is not None
        for name, process in list(self.processes.items()):
            if process.running or not process.wanted or self._stopping.is_set():
                continue
            state = self._restarts.setdefault(name, _Restarts([], policy.first_delay_s))
            if state.gave_up:
                continue
            if state.due is None:
                ran_s = now - process.started_at
                if ran_s >= policy.stable_after_s:
                    state.delay_s = policy.first_delay_s
                state.times = [t for t in state.times if now - t < policy.window_s]
                code = process.proc.returncode if process.proc else None
                if len(state.times) >= policy.limit:
                    state.gave_up = True
                    self.say(
                        f"{name} exited with code {code} after {len(state.times)} restarts within"
                        f" {policy.window_s:.0f} s: not restarted again\n{process.tail()}"
                    )
                    continue
                state.due = now + state.delay_s
                self.say(f"{name} exited with code {code} after {ran_s:.1f} s; restarting in {state.delay_s:.1f} s")
                continue
            if now < state.due:
                continue
            state.due = None
            state.times.append(now)
            state.delay_s = min(state.delay_s * 2, policy.max_delay_s)
            try:
                self._launch(self.spec_of(name), name)
            except StartupError as exc:
                self.say(f"{name} could not be restarted: {exc}")
                continue
            self.say(f"{name} restarted ({len(state.times)} of {policy.limit} within {policy.window_s:.0f} s)")

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=2)
        for process in reversed(list(self.processes.values())):
            process.stop()
        if self.redis is not None:
            self.redis.stop()
