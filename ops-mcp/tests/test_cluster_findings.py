"""diagnose() against a real cluster-monitor (its simulated cluster, on a loopback port) whose node is made
NotReady and whose pod restarts: the findings carry what cluster-monitor itself answers."""

import httpx

from cluster_monitor.main import create_app as create_cluster_monitor
from cluster_monitor.settings import ClusterMonitorSettings
from cluster_monitor.sources.simulated import SimulatedSource
from ops_mcp.main import create_app
from ops_mcp.settings import OpsSettings
from tests.support.servers import free_port, serving
from titanium_common.catalog import CATALOGUE

from .conftest import until

# A seed whose simulated cluster has no incident of its own for its first 200 steps.
QUIET_SEED = 977


def settings_with(**urls: str) -> OpsSettings:
    """Every service at an address where nothing listens, but those given."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    addresses = {service.url_field: nowhere for service in CATALOGUE.pooled_by("ops-mcp")} | urls
    return OpsSettings(env="test", sample_interval_s=3600, **addresses)


async def _sampled(ops) -> bool:
    return bool(ops.state.sampler.history)


async def test_with_nothing_running_every_service_is_offline_and_said_so():
    ops = create_app(settings_with())
    async with serving(ops) as ops_url, httpx.AsyncClient(timeout=10) as client:
        # The balancer is read by the background sampler: its first round comes at start-up.
        await until(lambda: _sampled(ops))
        report = (await client.get(f"{ops_url}/api/ops/diagnosis")).json()
    offline = {f["subject"] for f in report["findings"] if f["severity"] == "critical"}
    assert offline == {service.name for service in CATALOGUE.pooled_by("ops-mcp")}
    assert report["healthy"] is False
    assert {"cluster-monitor", "edge-config"} <= {
        f["subject"] for f in report["findings"] if f["severity"] == "warning"
    }


async def test_a_notready_node_and_a_restarting_pod_are_reported_with_cluster_monitors_figures():
    source = SimulatedSource(QUIET_SEED)
    monitor = create_cluster_monitor(ClusterMonitorSettings(env="test", collect_interval_s=0.05), source=source)
    async with serving(monitor) as monitor_url:
        ops = create_app(settings_with(cluster_monitor_url=monitor_url))
        async with serving(ops) as ops_url, httpx.AsyncClient(timeout=10) as client:

            async def cluster_findings() -> dict:
                answer = await client.get(f"{ops_url}/api/ops/diagnosis")
                assert answer.status_code == 200, answer.text
                return {f["subject"]: f for f in answer.json()["findings"] if f["subject"].startswith(("node", "pod"))}

            async def cluster_findings_with(subject: str, evidence: str) -> dict | None:
                found = await cluster_findings()
                return found if evidence in found.get(subject, {}).get("evidence", {}) else None

            assert await cluster_findings() == {}
            source.nodes[1].down_ticks = 10**6
            found = await until(lambda: cluster_findings_with("node node-2", "status"))
            nodes = (await client.get(f"{monitor_url}/api/nodes")).json()["nodes"]
            node = next(n for n in nodes if n["name"] == "node-2")
            assert node["status"] == "NotReady"
            finding = found["node node-2"]
            assert finding["severity"] == "critical"
            assert finding["evidence"]["cluster"] == node["cluster"] == "member2"
            assert finding["evidence"]["status"] == "NotReady"

            # A restart counts against the background sample taken before it.
            await ops.state.sampler.sample_once()
            pod = next(p for p in source.pods.values() if p.node == "node-1")
            pod.restarts += 1
            subject = f"pod {pod.namespace}/{pod.name}"
            found = await until(lambda: cluster_findings_with(subject, "restarts_before"))
            restart = found[subject]
            # (Downing node-2 changed the simulation's random sequence: node-1 may have an incident of its own.)
            assert restart["evidence"]["restarts"] > restart["evidence"]["restarts_before"]
            assert "restarted" in restart["problem"]
