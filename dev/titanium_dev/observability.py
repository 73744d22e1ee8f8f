"""`OBSERVABILITY=1 make run`: Debian's Prometheus and Alertmanager on loopback next to the suite, with short
intervals, scraping every replica of every service and evaluating the suite's rules (monitoring/rules).

Prometheus listens on 127.0.0.1:9090 and Alertmanager on 127.0.0.1:9093 (PROMETHEUS_PORT, ALERTMANAGER_PORT move
them); their data lives in a scratch folder removed on stop. Alertmanager runs without its cluster port, so two of
them on one machine do not find each other.
"""

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TextIO

import yaml

from . import monitoring
from .suite import ManagedProcess, StartedInBlock, StartupError, Suite, port_is_free

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
# Short, for a machine under watch: a stopped service is seen within a scrape, an alert within its `for`.
SCRAPE_INTERVAL = "2s"
READY_TIMEOUT_S = 60.0


def suite_targets(suite: Suite) -> dict[str, list[str]]:
    """Every replica of every service the suite runs, as Prometheus targets."""
    return {s.name: [f"127.0.0.1:{suite.ports[n]}" for n in suite.replica_names(s.name)] for s in suite.services}


def from_env(suite: Suite, echo: TextIO | None) -> "Observability":
    return Observability(
        suite_targets(suite),
        prometheus_port=int(os.environ.get("PROMETHEUS_PORT") or PROMETHEUS_PORT),
        alertmanager_port=alertmanager_port_from_env(),
        echo=echo,
    )


def alertmanager_port_from_env() -> int:
    return int(os.environ.get("ALERTMANAGER_PORT") or ALERTMANAGER_PORT)


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StartupError(f"{name} is not installed: `make observability-tools` installs Debian's package")
    return path


class Observability(StartedInBlock):
    """Prometheus and Alertmanager for `targets` (service → host:port of each replica); a context manager."""

    def __init__(
        self,
        targets: dict[str, list[str]],
        *,
        prometheus_port: int = PROMETHEUS_PORT,
        alertmanager_port: int = ALERTMANAGER_PORT,
        rule_files: list[Path] | None = None,
        interval: str = SCRAPE_INTERVAL,
        echo: TextIO | None = None,
    ) -> None:
        self.targets = targets
        self.prometheus_port = prometheus_port
        self.alertmanager_port = alertmanager_port
        self.rule_files = rule_files or monitoring.RULE_FILES
        self.interval = interval
        self.echo = echo
        self.lock = threading.Lock()
        self.work_dir: Path | None = None
        self.processes: list[ManagedProcess] = []

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def config(self) -> dict:
        return monitoring.prometheus_config(
            self.targets,
            f"127.0.0.1:{self.alertmanager_port}",
            [str(path) for path in self.rule_files],
            interval=self.interval,
            timeout=self.interval,
        )

    def start(self) -> None:
        for port in (self.prometheus_port, self.alertmanager_port):
            if not port_is_free(port):
                raise StartupError(f"port {port} is already in use (another Prometheus or Alertmanager?)")
        self.work_dir = Path(tempfile.mkdtemp(prefix="titanium-observability-"))
        config = self.work_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        alertmanager = [
            binary("prometheus-alertmanager"),
            f"--config.file={monitoring.ALERTMANAGER_CONFIG}",
            f"--storage.path={self.work_dir / 'alertmanager'}",
            f"--web.listen-address=127.0.0.1:{self.alertmanager_port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]
        prometheus = [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.work_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
            "--log.level=warn",
        ]
        for name, argv, url in (
            ("alertmanager", alertmanager, self.alertmanager_url),
            ("prometheus", prometheus, self.prometheus_url),
        ):
            process = ManagedProcess(name, argv, dict(os.environ), self.echo, self.lock)
            self.processes.append(process)
            process.start()
            self._wait_ready(process, url)

    def _wait_ready(self, process: ManagedProcess, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not process.running:
                raise StartupError(f"{process.name} exited:\n{process.tail()}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise StartupError(f"{process.name} not ready within {READY_TIMEOUT_S:.0f} s:\n{process.tail()}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def query(self, expression: str) -> list[dict]:
        """An instant query's result vector."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
        if body["status"] != "success":
            raise ValueError(f"{expression}: {body}")
        return body["data"]["result"]

    def alerts(self) -> list[dict]:
        """Alertmanager's active alerts (its API v2)."""
        with urllib.request.urlopen(f"{self.alertmanager_url}/api/v2/alerts?active=true", timeout=5) as answer:
            return json.load(answer)
