"""cluster-monitor's simulated source end to end, through the load balancer and the gateway."""

import json

import aiohttp
import httpx

from tests.system.conftest import COLLECTOR_TOKEN


def test_rest_reads_through_the_load_balancer(suite):
    with httpx.Client(base_url=suite.url("load-balancer"), timeout=10) as lb:
        clusters = lb.get("/api/clusters").json()["clusters"]
        assert {c["id"] for c in clusters} == {"member1", "member2"}
        nodes = {n["name"]: n for n in lb.get("/api/nodes").json()["nodes"]}
        assert {"node-1", "node-2"} <= set(nodes)
        node = lb.get("/api/nodes/node-1").json()
        assert node["cluster"] == nodes["node-1"]["cluster"]
        series = lb.get("/api/nodes/node-1/timeseries", params={"window": 60}).json()
        assert series["data"] and series["data"][0]["timestamp"].endswith("Z")
        missing = lb.get("/api/nodes/no-such-node")
        assert missing.status_code == 404
        assert "no-such-node" in missing.json()["detail"]
        assert lb.get("/api/nodes/node-1/timeseries", params={"window": 0}).status_code == 422
        collector = {"Authorization": f"Bearer {COLLECTOR_TOKEN}"}
        assert lb.post("/api/nodes/node-1/metrics", json={"cpu_millicores": 5}, headers=collector).status_code == 422


async def test_the_live_feed_crosses_both_proxies(suite):
    url = suite.url("load-balancer") + "/ws/clusters"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        first = json.loads((await ws.receive(timeout=10)).data)
        second = json.loads((await ws.receive(timeout=10)).data)
        assert (first["type"], second["type"]) == ("clusters", "events")
        assert {c["id"] for c in first["data"]} == {"member1", "member2"}
        assert isinstance(second["data"], list)
        # `clusters` comes again within the 5 s refresh even when nothing changed.
        again = json.loads((await ws.receive(timeout=12)).data)
        assert again["type"] in ("clusters", "event")
