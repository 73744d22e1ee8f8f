"""The real docker-compose.yml run as one Compose project on an engine (tests/support/engine.py), and a steady load
through its published load balancer for the fault tests.

The project gets a name of its own (several runs can share an engine), an env file made from `.env.example` with
generated secrets, and `TITANIUM_PORT` on a free loopback port. Every request of a test goes to that published
port; what only a container can see (a replica's own /stats) is read with `docker exec`.
"""

import asyncio
import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.support.deploy import COMPOSE_FILE, ENV_EXAMPLE, REPO_ROOT
from tests.support.engine import Engine

UP_TIMEOUT_S = 900
# The variables .env.example ships placeholders for, and what a careful operator puts there instead.
GENERATED_SECRETS = {
    "JWT_SECRET": lambda: secrets.token_hex(32),
    "POSTGRES_PASSWORD": lambda: secrets.token_hex(16),
    "ADMIN_PASSWORD": lambda: secrets.token_urlsafe(18),
    "COLLECTOR_TOKENS": lambda: secrets.token_hex(32),
}


def write_env_file(path: Path, port: int) -> dict[str, str]:
    """.env.example with every secret generated and TITANIUM_PORT set; the values, by name."""
    text = ENV_EXAMPLE.read_text()
    for name, make in {**GENERATED_SECRETS, "TITANIUM_PORT": lambda: str(port)}.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={make()}", text, flags=re.MULTILINE)
        assert count == 1, f".env.example has no {name}="
    path.write_text(text)
    return dict(line.split("=", 1) for line in text.splitlines() if re.match(r"[A-Z_]+=", line))


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    number: int
    state: str  # running, exited, restarting...
    health: str | None  # starting, healthy, unhealthy; None without a health check
    pid: int
    restarts: int
    exit_code: int


class ComposeProject:
    def __init__(self, engine: Engine, name: str, env_file: Path) -> None:
        self.engine, self.name, self.env_file = engine, name, env_file

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True, env_file: Path | None = None
    ) -> subprocess.CompletedProcess:
        command = ["docker", "compose", "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE),
                   "--project-name", self.name, "--env-file", str(env_file or self.env_file), *args]  # fmt: skip
        done = subprocess.run(command, env=self.engine.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return done

    def up(self, *args: str) -> float:
        """`up -d --wait` (every container healthy); the seconds it took."""
        started = time.monotonic()
        done = self.compose("up", "-d", "--wait", *args, timeout=UP_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise AssertionError(f"docker compose up failed:\n{done.stderr[-3000:]}\n{self.unhealthy_logs()}")
        return time.monotonic() - started

    def containers(self, service: str | None = None) -> list[Container]:
        """The project's containers (of one service), running or not, by service and replica number."""
        filters = ["--filter", f"label=com.docker.compose.project={self.name}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        ids = self.engine.docker("ps", "--all", "--quiet", *filters).stdout.split()
        if not ids:
            return []
        found = []
        for info in json.loads(self.engine.docker("inspect", *ids).stdout):
            labels, state = info["Config"]["Labels"], info["State"]
            if labels.get("com.docker.compose.oneoff") == "True":
                continue
            found.append(
                Container(
                    id=info["Id"],
                    name=info["Name"].lstrip("/"),
                    service=labels["com.docker.compose.service"],
                    number=int(labels["com.docker.compose.container-number"]),
                    state=state["Status"],
                    health=state.get("Health", {}).get("Status"),
                    pid=state["Pid"],
                    restarts=info["RestartCount"],
                    exit_code=state["ExitCode"],
                )
            )
        return sorted(found, key=lambda c: (c.service, c.number))

    def running(self, service: str) -> list[Container]:
        return [c for c in self.containers(service) if c.state == "running"]

    def container(self, service: str, number: int) -> Container:
        return next(c for c in self.containers(service) if c.number == number)

    def exec_json(self, container: Container, port: int, path: str) -> dict:
        """GET a path of the service inside its own container (what no other container's address shows)."""
        url = f"http://127.0.0.1:{port}{path}"
        code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
        return json.loads(self.engine.docker("exec", container.id, "python", "-c", code).stdout)

    def unhealthy_logs(self) -> str:
        parts = []
        for container in self.containers():
            if container.health not in (None, "healthy") or container.state != "running":
                log = self.engine.docker("logs", "--tail", "40", container.id, check=False)
                parts.append(f"--- {container.name} ({container.state}, {container.health}):\n{log.stdout}{log.stderr}")
        return "\n".join(parts)[-6000:]


@dataclass(frozen=True)
class Sample:
    offset_s: float  # when it was sent, from the start of the load
    status: int | str  # the HTTP status, or the client's error
    seconds: float
    detail: str = ""  # an error answer's `detail`: which upstream failed, and how

    @property
    def failed(self) -> bool:
        return not isinstance(self.status, int) or self.status >= 500


@dataclass
class LoadResult:
    """What a steady load saw, request by request, in the order they were sent."""

    samples: list[Sample] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.samples)

    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.failed]

    def failures_of(self, *services: str) -> list[Sample]:
        """Failures a fault of these services explains: the client got no answer, or a proxy's error answer names
        one of them (a gateway's 504 naming blog-service is a live gateway waiting for a slow blog-service)."""
        return [
            s
            for s in self.failures()
            if not isinstance(s.status, int) or any(f"upstream {service} " in s.detail for service in services)
        ]

    def before(self, offset_s: float) -> "LoadResult":
        """The requests sent in the first `offset_s` seconds (before a fault)."""
        return LoadResult([s for s in self.samples if s.offset_s < offset_s])

    def slowest_s(self) -> float:
        return max((s.seconds for s in self.samples), default=0.0)

    def summary(self) -> str:
        statuses: dict[str, int] = {}
        for sample in self.samples:
            statuses[str(sample.status)] = statuses.get(str(sample.status), 0) + 1
        failed = self.failures()
        window = f", failures {failed[0].offset_s:.1f}-{failed[-1].offset_s:.1f} s in" if failed else ""
        return f"{self.sent} requests, by status {statuses}{window}, slowest {self.slowest_s():.2f} s"


async def steady_load(
    url: str,
    rate: float,
    duration_s: float,
    *,
    headers: dict[str, str] | None = None,
    during=None,
    at_s: float = 0.0,
    timeout_s: float = 15.0,
) -> LoadResult:
    """GET `url` `rate` times a second for `duration_s`, each request on schedule whatever the others do; `during`
    (a blocking callable) runs in a thread `at_s` seconds in. Every request is bounded by `timeout_s`."""
    result = LoadResult()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def one(offset: float) -> None:
            sent = loop.time()
            detail = ""
            try:
                async with client.get(url) as answer:
                    body = await answer.read()
                    status: int | str = answer.status
                if status >= 500:
                    detail = body[:300].decode(errors="replace")
            except (aiohttp.ClientError, TimeoutError) as exc:
                status = type(exc).__name__
            result.samples.append(Sample(offset, status, loop.time() - sent, detail))

        fault = None
        tasks = []
        total = int(rate * duration_s)
        for index in range(total):
            offset = index / rate
            if during is not None and fault is None and offset >= at_s:
                fault = asyncio.ensure_future(asyncio.to_thread(during))
            await asyncio.sleep(max(0.0, started + offset - loop.time()))
            tasks.append(asyncio.ensure_future(one(offset)))
        await asyncio.gather(*tasks)
        if fault is not None:
            await fault
    result.samples.sort(key=lambda sample: sample.offset_s)
    return result
