"""`make run`: the whole suite on this machine, in the foreground until Ctrl-C (with OBSERVABILITY=1, Prometheus and
Alertmanager beside it). The launcher itself is `suite.py`; this is its command line."""

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from titanium_common.catalog import Service

from .observability import alertmanager_port_from_env, from_env
from .suite import REPO_ROOT, SERVICES, RestartPolicy, StartupError, Suite


def ports_from_env(services: tuple[Service, ...] = SERVICES) -> dict[str, int]:
    """`USER_SERVICE_PORT=9002` and the like move one service off its default port."""
    ports = {}
    for spec in services:
        value = os.environ.get(spec.name.upper().replace("-", "_") + "_PORT")
        if value:
            ports[spec.name] = int(value)
    return ports


def main() -> int:
    parser = argparse.ArgumentParser(description="Start the whole Titanium suite locally.")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", REPO_ROOT / ".data")))
    args = parser.parse_args()
    observe = os.environ.get("OBSERVABILITY") == "1"
    try:
        replicas = int(os.environ.get("REPLICAS") or "1")
        suite = Suite(
            ports=ports_from_env(),
            data_dir=args.data_dir,
            redis_url=os.environ.get("REDIS_URL") or None,
            replicas=replicas,
            restart=RestartPolicy(),
            extra_env=observability_env() if observe else None,
        )
    except (ValueError, StartupError) as exc:
        print(f"titanium: REPLICAS={os.environ.get('REPLICAS')}: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    watch = None
    try:
        if observe:
            watch = from_env(suite, suite.echo)
            watch.start()
            suite.say(f"Prometheus on {watch.prometheus_url}, Alertmanager on {watch.alertmanager_url}")
        suite.start()
    except StartupError as exc:
        suite.say(f"start-up failed: {exc}")
        suite.stop()
        if watch is not None:
            watch.stop()
        return 1
    suite.say(f"all services ready: dashboard at http://localhost:{suite.ports['load-balancer']} (Ctrl-C stops)")
    # A service that dies later is restarted by the suite's supervisor (RestartPolicy), which logs each step.
    stopping.wait()
    suite.say("stopping")
    suite.stop()
    if watch is not None:
        watch.stop()
    return 0


def observability_env() -> dict[str, str]:
    """What the services read when Alertmanager runs next to them (ops-mcp's alerts)."""
    return {"ALERTMANAGER_URL": f"http://127.0.0.1:{alertmanager_port_from_env()}"}


if __name__ == "__main__":
    sys.exit(main())
