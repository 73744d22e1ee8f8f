"""The simulated source: deterministic per seed, alive, and the whole service end to end on a real uvicorn server."""

import asyncio
import json

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from cluster_monitor.collector import Monitor
from cluster_monitor.events import changes
from cluster_monitor.feed import FeedClient
from cluster_monitor.main import create_app
from cluster_monitor.settings import ClusterMonitorSettings
from cluster_monitor.sources.simulated import SimulatedSource
from tests.support.servers import serving

SEED = 5
COLLECTOR = {"Authorization": "Bearer collector-token"}  # incidents of every kind within the first dozen steps


async def _run(seed: int, steps: int) -> list[tuple]:
    source = SimulatedSource(seed)
    before = await source.snapshot()
    seen = []
    for _ in range(steps):
        after = await source.snapshot()
        seen.append(
            (
                [(n.name, n.ready, n.usage) for c in after for n in c.nodes],
                [(p.name, p.restarts, p.usage) for c in after for p in c.pods],
                changes(before, after),
            )
        )
        before = after
    return seen


async def test_the_same_seed_gives_the_same_cluster_history():
    assert await _run(SEED, 50) == await _run(SEED, 50)
    assert await _run(SEED, 50) != await _run(SEED + 1, 50)


async def test_sample_objects_over_two_members_with_incidents_of_every_kind():
    source = SimulatedSource(SEED)
    first = await source.snapshot()
    assert [(c.id, [n.name for n in c.nodes], sorted(p.name for p in c.pods)) for c in first] == [
        ("member1", ["node-1"], ["prometheus-1", "web-server-1"]),
        ("member2", ["node-2"], ["app-backend-1"]),
    ]
    assert {(p.namespace, p.name) for c in first for p in c.pods} >= {("monitoring", "prometheus-1")}
    kinds = {kind for step in await _run(SEED, 30) for kind, _, _ in step[2]}
    assert kinds == {"info", "critical", "success", "auto"}


def test_a_slow_client_keeps_only_the_newest_messages():
    client = FeedClient(websocket=None, queue_size=3)
    for number in range(10):
        client.offer(str(number))
    assert list(client.queue) == ["7", "8", "9"]
    assert client.dropped == 7


async def _message(ws, kind: str, predicate=lambda data: True) -> dict:
    async with asyncio.timeout(10):
        while True:
            message = json.loads((await ws.receive()).data)
            if message["type"] == kind and predicate(message["data"]):
                return message


async def test_metrics_carry_each_clusters_and_nodes_readiness_as_collected():
    """What the cluster alerts read: one series per cluster and per node, 1 Ready and 0 NotReady."""
    settings = ClusterMonitorSettings(
        env="test", cluster_source="simulated", simulation_seed=SEED, collect_interval_s=600
    )
    app = create_app(settings)
    async with serving(app) as base, aiohttp.ClientSession(base) as http:
        async with http.get("/metrics") as response:
            families = {f.name: f for f in text_string_to_metric_families(await response.text())}
        clusters = app.state.monitor.clusters  # one collection at start-up, the next ten minutes away
    assert {s.labels["cluster"]: s.value for s in families["titanium_cluster_ready"].samples} == {
        c.name: float(c.ready) for c in clusters
    }
    assert {
        (s.labels["cluster"], s.labels["node"]): s.value for s in families["titanium_cluster_node_ready"].samples
    } == {(c.name, n.name): float(n.ready) for c in clusters for n in c.nodes}
    assert len(clusters) == 2


async def test_simulated_service_end_to_end():
    settings = ClusterMonitorSettings(
        env="test",
        cluster_source="simulated",
        simulation_seed=SEED,
        collect_interval_s=0.05,
        ws_push_interval_s=0.2,
        collector_tokens="old-token,collector-token",
    )
    async with serving(create_app(settings)) as base, aiohttp.ClientSession(base) as http:
        async with http.get("/ready") as ready:
            assert ready.status == 200
        async with http.ws_connect("/ws/clusters") as ws, http.ws_connect("/ws") as idle:
            kinds = [json.loads((await ws.receive()).data)["type"] for _ in range(2)]
            assert kinds == ["clusters", "events"]
            # /ws (the original cluster dashboard's path) is the same feed
            async with http.ws_connect("/ws") as original:
                assert [json.loads((await original.receive()).data)["type"] for _ in range(2)] == kinds
            critical = await _message(ws, "event", lambda e: e["type"] == "critical")
            assert critical["timestamp"].endswith("Z")
            await _message(ws, "clusters")
            # the second client never read a thing and the first was served all along
            assert not idle.closed

        for path in (
            "/api/nodes",
            "/api/nodes/node-1",
            "/api/nodes/node-1/pods",
            "/api/nodes/node-1/timeseries?window=60&points=5",
            "/api/pods",
            "/api/pods/web-server-1?namespace=default",
            "/api/pods/prometheus-1/timeseries?namespace=monitoring",
            "/api/namespaces",
            "/api/namespaces/monitoring",
            "/api/namespaces/default/pods",
            "/api/namespaces/default/timeseries",
            "/api/namespaces/default/deployments",
            "/api/namespaces/default/deployments/app-backend",
            "/api/namespaces/default/deployments/app-backend/pods",
            "/api/deployments",
            "/api/deployments/prometheus?namespace=monitoring",
            "/api/deployments/prometheus/timeseries",
            "/api/nodes/timeseries",
            "/api/pods/timeseries",
            "/api/namespaces/timeseries",
            "/api/deployments/timeseries",
            "/api/clusters",
            "/api/clusters/member2",
            "/api/events",
        ):
            async with http.get(path) as response:
                assert response.status == 200, (path, await response.text())

        async with http.get("/api/namespaces/default/timeseries?points=3") as response:
            series = await response.json()
        assert series["clusters"] == ["member1", "member2"]
        assert len(series["data"]) == 3 and series["samples"] > 3
        assert all(point["timestamp"].endswith("Z") for point in series["data"])

        for path, status, detail in (
            ("/api/nodes/node-9", 404, "node 'node-9' not found"),
            (
                "/api/pods/web-server-1?namespace=monitoring",
                404,
                "pod 'web-server-1' in namespace 'monitoring' not found",
            ),
            ("/api/namespaces/nope/deployments", 404, "namespace 'nope' not found"),
            ("/api/deployments/nope", 404, "deployment 'nope' not found"),
            ("/api/clusters/member9", 404, "cluster 'member9' not found"),
        ):
            async with http.get(path) as response:
                assert (response.status, (await response.json())["detail"]) == (status, detail)
        for window in ("0", "86401", "abc"):
            async with http.get(f"/api/nodes/node-1/timeseries?window={window}") as response:
                assert response.status == 422

        sample = {
            "cpu_millicores": 125.5,
            "memory_bytes": 64 * 2**20,
            "disk_io": {"read_bytes": 10, "write_bytes": 20},
            "network_io": {"bytes_sent": 30, "bytes_recv": 40},
            "node_name": "node-2",
        }
        node_sample = {k: v for k, v in sample.items() if k != "node_name"}  # a node's push names no node
        async with http.post("/api/namespaces/batch/pods/report-7/metrics", json=sample, headers=COLLECTOR) as response:
            assert response.status == 201
            assert (await response.json())["cluster"] == "member2"  # where node-2 is
        async with http.get("/api/pods/report-7?namespace=batch") as response:
            pushed = await response.json()
        assert (pushed["cpu_millicores"], pushed["node"], pushed["cluster"]) == (125.5, "node-2", "member2")
        assert pushed["cpu_percentage"] == round(100 * 125.5 / 8000, 2)
        async with http.get("/api/namespaces/batch") as response:
            assert (await response.json())["cpu_millicores"] == 125.5

        for body, missing in (({**sample, "memory_bytes": None}, "memory_bytes"), ({"cpu_millicores": 1}, "disk_io")):
            body = {k: v for k, v in body.items() if v is not None}
            async with http.post(
                "/api/namespaces/batch/pods/report-7/metrics", json=body, headers=COLLECTOR
            ) as response:
                assert response.status == 422
                assert missing in {error["loc"][-1] for error in (await response.json())["detail"]}
        async with http.post(
            "/api/nodes/node-1/metrics", json={**node_sample, "cpu_millicores": -1}, headers=COLLECTOR
        ) as response:
            assert response.status == 422
        async with http.post("/api/nodes/Not_A_Name/metrics", json=node_sample, headers=COLLECTOR) as response:
            assert response.status == 422
        # JSON false is not the integer 0, nor true the number 1.
        for bad in ({"network_io": {"bytes_sent": 1, "bytes_recv": False}}, {"cpu_millicores": True}):
            async with http.post(
                "/api/nodes/node-1/metrics", json={**node_sample, **bad}, headers=COLLECTOR
            ) as response:
                assert response.status == 422, bad
        # Pushes need a collector token: none, a wrong one, and a user's bearer token are refused.
        for headers in ({}, {"Authorization": "Bearer not-it"}, {"Authorization": "Basic eDp5"}):
            async with http.post("/api/nodes/node-1/metrics", json=node_sample, headers=headers) as response:
                assert response.status == 401 and response.headers["WWW-Authenticate"] == "Bearer", headers
        async with http.post(
            "/api/nodes/node-1/metrics", json=node_sample, headers={"Authorization": "Bearer old-token"}
        ) as response:
            assert response.status == 201  # the token being rotated out still works

        async with http.get("/stats") as response:
            stats = await response.json()
        assert (stats["source"], stats["clusters"], stats["nodes"]) == ("simulated", 2, 2)
        assert stats["pods"] >= 4 and stats["collections"] > 1 and stats["ws_clients"] == 0
        assert stats["last_collection_duration_ms"] is not None


async def test_without_collector_tokens_pushes_are_refused():
    settings = ClusterMonitorSettings(env="test", cluster_source="simulated", simulation_seed=SEED)
    sample = {"cpu_millicores": 1, "memory_bytes": 1, "disk_io": {"read_bytes": 0, "write_bytes": 0},
              "network_io": {"bytes_sent": 0, "bytes_recv": 0}}  # fmt: skip
    async with (
        serving(create_app(settings)) as base,
        aiohttp.ClientSession(base) as http,
        http.post("/api/nodes/node-1/metrics", json=sample, headers=COLLECTOR) as response,
    ):
        assert response.status == 403 and "COLLECTOR_TOKENS" in (await response.json())["detail"]


async def test_one_state_change_pushes_one_clusters_message():
    monitor = Monitor(ClusterMonitorSettings(env="test"), SimulatedSource(SEED))
    client = FeedClient(websocket=None, queue_size=1000)
    monitor.hub.clients.add(client)
    changed = 0
    for _ in range(30):
        before = len(client.queue)
        events_before = len(monitor.events)
        await monitor.collect_once()
        kinds = [json.loads(text)["type"] for text in list(client.queue)[before:]]
        assert kinds.count("clusters") <= 1, kinds
        if len(monitor.events) > events_before:
            assert kinds.count("clusters") == 1, kinds
            changed += 1
    assert changed >= 3  # the seed raises incidents within the run
