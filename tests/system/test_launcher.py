import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.servers import free_port
from titanium_dev.suite import SERVICES, StartupError, Suite


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited but is not yet reaped: not an orphan at work.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1][0] != "Z"


def children_of(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().split(") ")[1].split()[1]) == parent:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def test_a_taken_port_fails_the_run_before_anything_starts(tmp_path):
    gateway = next(s for s in SERVICES if s.name == "api-gateway")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        suite = Suite(ports={"api-gateway": port}, data_dir=tmp_path, echo=None, services=(gateway,))
        with pytest.raises(StartupError) as failure:
            suite.start(timeout=60)
        suite.stop()
    assert f"api-gateway: port {port} is already in use" in str(failure.value)
    assert "api-gateway" not in suite.processes


def test_make_run_launcher_starts_everything_and_ctrl_c_leaves_no_orphan(tmp_path):
    env = dict(os.environ, DATA_DIR=str(tmp_path))
    ports = {spec.name: free_port() for spec in SERVICES}
    env.update({name.upper().replace("-", "_") + "_PORT": str(port) for name, port in ports.items()})
    env.pop("REDIS_URL", None)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "titanium_dev.run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in launcher.stdout:
            lines.append(line)
            if "all services ready" in line or "start-up failed" in line:
                break
        assert "dashboard at http://localhost:" in lines[-1], "".join(lines[-40:])
        assert any(line.startswith("user-service    | ") for line in lines)
        answer = httpx.get(f"http://127.0.0.1:{ports['load-balancer']}/api/health")
        assert answer.json()["service"] == "api-gateway"
        children = children_of(launcher.pid)
        assert len(children) == len(SERVICES) + 1  # the services and their private redis-server
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=30) == 0
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in children if alive(pid)]
    finally:
        if launcher.poll() is None:
            launcher.kill()
        launcher.stdout.close()


def test_a_service_that_crashes_at_start_fails_the_run_with_its_last_lines(tmp_path):
    gateway = next(s for s in SERVICES if s.name == "api-gateway")
    suite = Suite(
        ports={"api-gateway": free_port()},
        data_dir=tmp_path,
        echo=None,
        services=(gateway,),
        extra_env={"LOG_FORMAT": "yaml"},
    )
    with pytest.raises(StartupError) as failure:
        suite.start(timeout=60)
    suite.stop()
    assert "api-gateway exited with code 1" in str(failure.value)
    assert "log_format" in str(failure.value)


def test_two_replicas_on_sqlite_are_refused_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    suite = Suite(data_dir=tmp_path, echo=None, replicas=2)
    with pytest.raises(StartupError) as refused:
        suite.start(timeout=60)
    suite.stop()
    assert "REPLICAS=2 needs PostgreSQL" in str(refused.value)
    assert "SQLite" in str(refused.value)
    assert suite.processes == {}
    # The launcher's own exit: a clear message, no service started.
    env = dict(os.environ, REPLICAS="2", DATA_DIR=str(tmp_path))
    env.pop("DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, "-m", "titanium_dev.run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    assert "REPLICAS=2 needs PostgreSQL" in run.stdout


def test_two_replicas_of_the_balancer_and_the_gateway_balance_over_each_other(tmp_path, redis_target):
    wanted = ("api-gateway", "load-balancer")
    services = tuple(s for s in SERVICES if s.name in wanted)
    ports = {name: free_port() for name in (*wanted, "api-gateway-2", "load-balancer-2")}
    suite = Suite(
        ports=ports,
        data_dir=tmp_path,
        echo=None,
        services=services,
        replicas=2,
        redis_url=redis_target.url,
        extra_env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test", "REDIS_PREFIX": redis_target.prefix},
    )
    with suite:
        assert set(suite.processes) == {"api-gateway", "api-gateway-2", "load-balancer", "load-balancer-2"}
        env = suite.env_for(services[1], "load-balancer-2")
        assert env["GATEWAY_URLS"] == f"{suite.url('api-gateway')},{suite.url('api-gateway-2')}"
        assert env["REPLICA_NAME"] == "load-balancer-2"
        for _ in range(6):
            answer = httpx.get(f"{suite.url('load-balancer-2')}/api/health")
            assert answer.status_code == 200
        stats = httpx.get(f"{suite.url('load-balancer-2')}/stats").json()["load-balancer"]
        members = stats["pools"]["api-gateway"]["members"]
        seen = {m["url"] for m in members if m["requests"] > 0}
        assert seen == {suite.url("api-gateway"), suite.url("api-gateway-2")}
        assert stats["scope"] == "suite" and stats["replica"] == "load-balancer-2"
        # /stats reads both gateways: one entry, counted over both, naming each with its own figures.
        gateway = httpx.get(f"{suite.url('load-balancer')}/stats").json()["api-gateway"]
        replicas = gateway["replicas"]
        assert [r["url"] for r in replicas] == [suite.url("api-gateway"), suite.url("api-gateway-2")]
        assert [r["service_status"] for r in replicas] == ["online", "online"]
        assert gateway["service_status"] == "online"
        assert gateway["requests"]["total"] == sum(r["stats"]["requests"]["total"] for r in replicas)
        assert all(r["stats"]["service"] == "api-gateway" and r["stats"]["requests"]["total"] > 0 for r in replicas)
    default = Suite(data_dir=tmp_path, echo=None, replicas=2)
    assert (default.ports["load-balancer-2"], default.ports["api-gateway-2"]) == (7101, 8010)
