"""Two edge-config replicas on one PostgreSQL schema, one Redis (a key prefix of the test's own) and one Kubernetes
API double: a device is probed by one of them, both answer with the same health, a sync creates each Service once,
and the other replica takes the work over when the holder stops."""

import contextlib

import httpx
import pytest

from edge_config.main import create_app
from tests.support.polling import eventually
from tests.support.servers import host_address, serving

pytestmark = [
    pytest.mark.kube_contexts("edge"),
    pytest.mark.parametrize("database_target", ["postgresql"], indirect=True),
]
NS = "monitoring"
# Kubernetes Endpoints never hold loopback addresses: the synced devices listen on an address of this host.
LAN = host_address(4)


@contextlib.asynccontextmanager
async def replica(edge_settings, kube_api, redis_target, name: str, admin: dict[str, str]):
    settings = edge_settings.model_copy(
        update={
            "replica_name": name,
            "redis_url": redis_target.url,
            "redis_prefix": redis_target.prefix,
            "lease_backend": "redis",
            "lease_ttl_s": 1.5,
            "health_interval_s": 0.2,
            "sync_interval_s": 0.2,
            "kube_mode": "kubeconfig",
            "kubeconfig_path": str(kube_api.kubeconfig),
            "kube_context": "edge",
        }
    )
    app = create_app(settings)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=30, headers=admin) as client:
        yield app, client


@pytest.mark.skipif(LAN is None, reason="needs a non-loopback IPv4 address")
async def test_two_replicas_probe_and_sync_once(edge_settings, kube_api, redis_target, farm, auth_processes):
    admin = {"Authorization": f"Bearer {await auth_processes.admin_token()}"}
    cluster = kube_api.clusters["edge"]
    async with (
        replica(edge_settings, kube_api, redis_target, "edge-a", admin) as (app_a, a),
        replica(edge_settings, kube_api, redis_target, "edge-b", admin) as (app_b, b),
    ):
        assert (app_a.state.lease.mode, app_b.state.lease.mode) == ("holder", "follower")
        devices = [await farm.start(host=LAN) for _ in range(3)]
        for i, device in enumerate(devices):
            # Writes work on either replica (PostgreSQL).
            writer = a if i % 2 else b
            answer = await writer.put(
                f"/config/dev-{i}",
                json={"device_type": "jetson", "ip_address": device.host, "reload_port": device.port},
            )
            assert answer.status_code == 200, answer.text

        async def all_healthy_on_b():
            listing = (await b.get("/devices")).json()
            return listing["total"] == 3 and listing["healthy"] == 3 and listing

        seen_b = await eventually(all_healthy_on_b)
        seen_a = (await a.get("/devices")).json()
        assert [d["status"] for d in seen_a["devices"]] == [d["status"] for d in seen_b["devices"]]

        async def services():
            found = [await cluster.get("v1/services", f"edge-device-dev-{i}", NS) for i in range(3)]
            return all(found) and found

        first = await eventually(services)
        rounds_before = app_a.state.monitor.rounds
        probes_before = [d.count("GET /health") for d in devices]
        await eventually(lambda: _after(app_a.state.monitor, rounds_before + 5))
        # One prober: every device answered one probe per round of the holder; the follower probed nothing.
        assert app_b.state.monitor.rounds == 0
        rounds = app_a.state.monitor.rounds - rounds_before
        for device, before in zip(devices, probes_before, strict=True):
            assert rounds - 1 <= device.count("GET /health") - before <= rounds + 1
        # One syncer: the Services were created once and never re-created or rewritten.
        again = await services()
        assert [s["metadata"]["uid"] for s in again] == [s["metadata"]["uid"] for s in first]
        assert [s["metadata"]["resourceVersion"] for s in again] == [s["metadata"]["resourceVersion"] for s in first]
        assert app_b.state.kube.last_sync is None
        assert app_a.state.kube.last_sync is not None
        stats_b = (await b.get("/stats")).json()
        assert stats_b["lease"]["mode"] == "follower" and stats_b["lease"]["holder"] == "edge-a"


async def test_the_follower_takes_the_probes_over_when_the_holder_stops(
    edge_settings, kube_api, redis_target, farm, auth_processes
):
    admin = {"Authorization": f"Bearer {await auth_processes.admin_token()}"}
    device = await farm.start()
    async with contextlib.AsyncExitStack() as stack:
        app_a, a = await stack.enter_async_context(replica(edge_settings, kube_api, redis_target, "edge-a", admin))
        b_stack = contextlib.AsyncExitStack()
        app_b, _ = await b_stack.enter_async_context(replica(edge_settings, kube_api, redis_target, "edge-b", admin))
        async with b_stack:
            body = {"device_type": "jetson", "ip_address": device.host, "reload_port": device.port}
            assert (await a.put("/config/dev-1", json=body)).status_code == 200
            await eventually(lambda: _after(app_a.state.monitor, 2))
            assert app_b.state.monitor.rounds == 0
            await stack.aclose()  # the holder stops (and releases the lease)
            await eventually(lambda: _after(app_b.state.monitor, 2), timeout_s=2 * 1.5 + 2)
            assert app_b.state.lease.mode == "holder"


async def _after(monitor, rounds: int) -> bool:
    return monitor.rounds >= rounds
