"""The real suite (the launcher, free ports, private data) driven as an assistant drives it: an MCP client from
the SDK over streamable HTTP through the load balancer and over stdio (`python -m ops_mcp.stdio`), every tool called and
checked against what the services themselves answer; diagnose() on a healthy suite, with a service stopped
(SIGSTOP), with requests failing on a stopped service (the trace it cites) and with a device unreachable; and the
dashboard's Diagnosis panel in Chromium."""

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import httpx
import httpx2
import pytest
from aiohttp import web
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.support.browser import screenshot
from tests.support.servers import AppServer, free_port
from titanium_dev.suite import REPO_ROOT, SERVICES, Suite

from .conftest import until

OUTPUT = REPO_ROOT / "test-output"
ADMIN = ("ops-admin", "ops-admin-password-1")
# A simulated cluster with no incident of its own for its first 200 steps (1000 s at the default 5 s).
QUIET_SEED = "977"
TOOLS = {
    "suite_status",
    "service_stats",
    "slowest_routes",
    "clusters",
    "nodes",
    "pods",
    "resource_timeseries",
    "recent_events",
    "edge_devices",
    "reload_edge_device",
    "diagnose",
    "alerts",
    "slow_requests",
    "trace",
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    OUTPUT.mkdir(exist_ok=True)
    environment = {
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
        "CLUSTER_SOURCE": "simulated",
        "SIMULATION_SEED": QUIET_SEED,
        "HEALTH_INTERVAL_S": "1",
        "SAMPLE_INTERVAL_S": "1",
        "DEVICE_ALLOWED_CIDRS": "127.0.0.0/8",
    }
    with (
        open(OUTPUT / "ops-mcp-suite.log", "w") as log,
        Suite(
            ports={spec.name: free_port() for spec in SERVICES},
            data_dir=tmp_path_factory.mktemp("ops-data"),
            extra_env=environment,
            echo=log,
        ) as running,
    ):
        yield running


def token_of(suite: Suite, username: str, password: str) -> str:
    # Straight at auth-service: the login itself (a password hash) is not what these tests are about.
    answer = httpx.post(
        suite.url("auth-service") + "/api/auth/login", json={"username": username, "password": password}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.fixture(scope="module")
def admin_token(suite) -> str:
    return token_of(suite, *ADMIN)


@pytest.fixture(scope="module")
def user_token(suite) -> str:
    body = {"username": "ops-viewer", "email": "ops-viewer@example.com", "password": "viewer-password-1"}
    assert httpx.post(suite.url("user-service") + "/api/users", json=body, timeout=30).status_code == 201
    return token_of(suite, "ops-viewer", "viewer-password-1")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def http_mcp(suite: Suite, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=bearer(token), timeout=30) as http,
        Client(streamable_http_client(suite.url("load-balancer") + "/mcp", http_client=http)) as client,
    ):
        yield client


async def call(client: Client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


@contextlib.asynccontextmanager
async def device_double(reloads: list[str]) -> AsyncIterator[int]:
    """An edge device's exporter on its reload port: healthy, and it records reloads."""

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def reload(request: web.Request) -> web.Response:
        reloads.append(request.path)
        return web.json_response({"reloaded": True})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/reload", reload)
    async with AppServer(app) as server:
        yield server.port


@contextlib.asynccontextmanager
async def registered_device(suite: Suite, token: str, device_id: str, port: int) -> AsyncIterator[None]:
    config = {"device_type": "jetson_orin", "ip_address": "127.0.0.1", "reload_port": port}
    async with httpx.AsyncClient(base_url=suite.url("load-balancer"), headers=bearer(token), timeout=10) as lb:
        assert (await lb.put(f"/api/edge/config/{device_id}", json=config)).status_code == 200
        try:
            yield
        finally:
            assert (await lb.delete(f"/api/edge/config/{device_id}")).status_code == 200


async def diagnosis(suite: Suite) -> dict:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(suite.url("load-balancer") + "/api/ops/diagnosis")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_healthy_suite_is_diagnosed_with_nothing_wrong(suite):
    report = await until(lambda: _healthy(suite))
    assert report["findings"] == []
    assert report["summary"].startswith("Nothing wrong")
    assert {"cluster-monitor /api/nodes", "cluster-monitor /api/pods", "edge-config /api/edge/devices"} <= set(
        report["checked"]
    )


async def _healthy(suite: Suite) -> dict | None:
    report = await diagnosis(suite)
    return report if report["healthy"] else None


async def test_every_tool_over_streamable_http_through_the_load_balancer(suite, admin_token):
    reloads: list[str] = []
    async with (
        device_double(reloads) as port,
        registered_device(suite, admin_token, "ops-jetson-1", port),
        http_mcp(suite, admin_token) as client,
        httpx.AsyncClient(base_url=suite.url("load-balancer"), headers=bearer(admin_token), timeout=10) as lb,
    ):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert all(tool.description and tool.output_schema for tool in tools.values())
        assert {str(r.uri) for r in (await client.list_resources()).resources} == {
            "titanium://stats",
            "titanium://events",
        }
        [prompt] = (await client.list_prompts()).prompts
        assert prompt.name == "incident-review"
        text = (await client.get_prompt("incident-review", {"service": "blog-service"})).messages[0].content.text
        assert "`diagnose`" in text and "blog-service" in text

        status = await call(client, "suite_status")
        stats = (await lb.get("/stats")).json()
        assert {s["name"]: s["status"] for s in status["services"]} == {
            name: stats[name]["service_status"] for name in {s["name"] for s in status["services"]}
        }
        assert status["balancer"]["state"] in ("ACTIVE", "IDLE")
        assert status["balancer"]["healthy_gateway_replicas"] == 1

        user_stats = await call(client, "service_stats", service="user-service")
        assert user_stats["stats"]["service"] == "user-service"
        own = (await lb.get(suite.url("user-service") + "/stats")).json()
        assert user_stats["stats"]["users"] == own["users"]

        slow = await call(client, "slowest_routes", service="cluster-monitor", limit=50)
        assert ("GET", "/api/pods") in {(r["method"], r["route"]) for r in slow["routes"]}
        assert {r["service"] for r in slow["routes"]} == {"cluster-monitor"}

        clusters = await call(client, "clusters")
        assert {c["id"] for c in clusters["items"]} == {
            c["id"] for c in (await lb.get("/api/clusters")).json()["clusters"]
        }
        nodes = await call(client, "nodes")
        assert {n["name"] for n in nodes["items"]} == {n["name"] for n in (await lb.get("/api/nodes")).json()["nodes"]}
        pods = await call(client, "pods", namespace="default")
        listed = (await lb.get("/api/pods", params={"namespace": "default"})).json()["pods"]
        assert {p["name"] for p in pods["items"]} == {p["name"] for p in listed}
        on_node = await call(client, "pods", node="node-1")
        assert on_node["items"] and {p["node"] for p in on_node["items"]} == {"node-1"}

        series = await call(client, "resource_timeseries", kind="node", name="node-1", window_s=120)
        assert series["points"] and series["points"][0]["timestamp"].endswith("Z")

        events = await call(client, "recent_events", limit=5)
        logged = (await lb.get("/api/events")).json()["events"]
        assert events["items"] == list(reversed(logged))[: len(events["items"])]

        async def device_healthy() -> dict | None:
            devices = await call(client, "edge_devices", status="healthy")
            return devices if "ops-jetson-1" in {d["device_id"] for d in devices["devices"]} else None

        devices = await until(device_healthy)
        assert devices["by_status"]["healthy"] >= 1
        reloads.clear()
        outcome = await call(client, "reload_edge_device", device_id="ops-jetson-1")
        assert outcome["reloaded"] is True and "ops-jetson-1" in outcome["summary"]
        assert reloads == ["/reload"]

        report = await call(client, "diagnose")
        # The tests' own logins (a password hash each) may have lifted a p95: a warning, never a critical finding.
        assert [f for f in report["findings"] if f["severity"] == "critical"] == []

        # The node listing above, as a trace: through the balancer and the gateway to cluster-monitor's route.
        node_trace = (await lb.get("/api/nodes")).headers["X-Trace-Id"]
        recent = await call(client, "slow_requests", slowest=100)
        listed = {r["trace_id"]: r for r in recent["requests"]}
        assert listed[node_trace]["route"] == "GET /api/nodes"
        assert {"load-balancer", "api-gateway", "cluster-monitor"} <= set(listed[node_trace]["services"])
        tree = await call(client, "trace", trace_id=node_trace)
        by_id = {span["span_id"]: span for span in tree["spans"]}
        assert [s["service"] for s in tree["spans"] if s["parent_id"] is None] == ["load-balancer"]
        route_span = next(s for s in tree["spans"] if s["name"] == "GET /api/nodes")
        assert by_id[route_span["parent_id"]]["service"] == "api-gateway"
        unknown = await client.call_tool("trace", {"trace_id": "f" * 32})
        assert unknown.is_error and "no spans" in unknown.content[0].text

        aggregate = json.loads((await client.read_resource("titanium://stats")).contents[0].text)
        assert {"load-balancer", "user-service", "cluster-monitor"} <= set(aggregate)
        feed = json.loads((await client.read_resource("titanium://events")).contents[0].text)
        assert feed["events"][: len(logged)] == logged[: len(feed["events"])]

        # Bad input is the assistant's to read and correct, never a crash.
        wrong = await client.call_tool("service_stats", {"service": "no-such-service"})
        assert wrong.is_error
        missing = await client.call_tool("reload_edge_device", {"device_id": "no-such-device"})
        assert missing.is_error and "not found" in missing.content[0].text


async def test_stdio_server_reads_the_suite_through_its_public_address(suite):
    # An admin's name and password, as a desktop assistant's config holds them: the server logs in itself.
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ops_mcp.stdio"],
        env={"TITANIUM_URL": suite.url("load-balancer"), "TITANIUM_USERNAME": ADMIN[0], "TITANIUM_PASSWORD": ADMIN[1]},
        cwd=str(REPO_ROOT),
    )
    async with Client(server) as client, httpx.AsyncClient(base_url=suite.url("load-balancer"), timeout=10) as lb:
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
        nodes = await call(client, "nodes")
        assert {n["name"] for n in nodes["items"]} == {n["name"] for n in (await lb.get("/api/nodes")).json()["nodes"]}
        status = await call(client, "suite_status")
        assert {s["name"] for s in status["services"]} >= {"load-balancer", "api-gateway", "user-service"}
        report = await call(client, "diagnose")
        # The tests' own logins (a password hash each) may have lifted a p95: a warning, never a critical finding.
        assert [f for f in report["findings"] if f["severity"] == "critical"] == []
        node_trace = (await lb.get("/api/nodes")).headers["X-Trace-Id"]
        recent = await call(client, "slow_requests", slowest=100)
        assert node_trace in {r["trace_id"] for r in recent["requests"]}
        assert {s["service"] for s in (await call(client, "trace", trace_id=node_trace))["spans"]} >= {
            "load-balancer",
            "cluster-monitor",
        }
        events = json.loads((await client.read_resource("titanium://events")).contents[0].text)
        assert "events" in events
        missing = await client.call_tool("reload_edge_device", {"device_id": "no-such-device"})
        assert missing.is_error and "not found" in missing.content[0].text


def test_the_http_transport_and_the_rest_routes_need_an_admin(suite, user_token):
    lb = suite.url("load-balancer")
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    anonymous = httpx.post(lb + "/mcp", json=request, headers=headers, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.json()["detail"] == "missing bearer token"
    forged = httpx.post(lb + "/mcp", json=request, headers=headers | bearer("not.a.token"), timeout=10)
    assert forged.status_code == 401
    viewer = httpx.post(lb + "/mcp", json=request, headers=headers | bearer(user_token), timeout=10)
    assert viewer.status_code == 403
    assert "admin" in viewer.json()["detail"]
    assert httpx.get(lb + "/api/ops/status", timeout=10).status_code == 401
    assert httpx.get(lb + "/api/ops/status", headers=bearer(user_token), timeout=10).status_code == 403
    refused = httpx.post(lb + "/api/ops/edge-devices/any/reload", headers=bearer(user_token), timeout=10)
    assert refused.status_code == 403


async def test_an_unreachable_device_is_diagnosed(suite, admin_token):
    closed_port = free_port()
    async with registered_device(suite, admin_token, "ops-lost-1", closed_port):

        async def device_finding() -> dict | None:
            report = await diagnosis(suite)
            return next((f for f in report["findings"] if f["subject"] == "edge device ops-lost-1"), None)

        finding = await until(device_finding)
        async with httpx.AsyncClient(timeout=10) as client:
            status = (await client.get(suite.url("edge-config") + "/api/edge/devices/ops-lost-1/status")).json()
        assert finding["evidence"]["status"] == status["status"] == "unreachable"
        assert finding["evidence"]["error"]
        assert "reload" in finding["next_step"]


async def test_a_stopped_service_is_diagnosed_and_shown_on_the_dashboard(suite, browser_page):
    page, log = browser_page
    user_service = suite.processes["user-service"].proc.pid
    os.kill(user_service, signal.SIGSTOP)
    try:

        async def timeout_finding() -> dict | None:
            report = await diagnosis(suite)
            return next((f for f in report["findings"] if f["subject"] == "user-service"), None)

        finding = await until(timeout_finding)
        assert finding["severity"] == "critical"
        assert finding["evidence"]["service_status"] == "timeout"
        assert finding["evidence"]["url"] == suite.url("user-service")

        await page.goto(suite.url("load-balancer") + "/")
        item = page.locator('#diagnosis-findings li[data-subject="user-service"]')
        await item.wait_for(timeout=20_000)
        assert "timing out" in await item.inner_text()
        assert await item.get_attribute("data-severity") == "critical"
        await screenshot(page, "dashboard-diagnosis")
    finally:
        os.kill(user_service, signal.SIGCONT)

    async def user_service_answers_again() -> bool:
        # (Requests held while it was stopped may lift its p95: a warning that follows, not the timeout.)
        report = await diagnosis(suite)
        return not any(f["subject"] == "user-service" and f["severity"] == "critical" for f in report["findings"])

    await until(user_service_answers_again)
    assert log.page_errors == []


async def test_failing_requests_are_diagnosed_with_the_hop_that_returned_the_error(suite, user_token):
    user_service = suite.processes["user-service"].proc.pid
    os.kill(user_service, signal.SIGSTOP)
    try:
        # More than diagnose()'s minimum of requests, all waiting on the stopped service until the gateway gives up.
        async with httpx.AsyncClient(base_url=suite.url("load-balancer"), timeout=30) as lb:
            answers = await asyncio.gather(*(lb.get("/api/users/1", headers=bearer(user_token)) for _ in range(30)))
        assert {answer.status_code for answer in answers} == {504}
    finally:
        os.kill(user_service, signal.SIGCONT)

    def cites_the_route(finding: dict) -> bool:
        # Once user-service, running again, has kept its span of the request, the request is named by its route.
        cited = finding["evidence"].get("trace") or {}
        return finding.get("kind") == "errors" and cited.get("route") == "GET /api/users/{user_id}"

    async def cited_error_finding() -> dict | None:
        report = await diagnosis(suite)
        return next((f for f in report["findings"] if f["subject"] == "api-gateway" and cites_the_route(f)), None)

    finding = await until(cited_error_finding)
    cited = finding["evidence"]["trace"]
    # The gateway's call to user-service returned the error, not the slowest hop, nor the balancer passing it on.
    assert cited["status"] == 504
    assert cited["failing_hop"] == "api-gateway → GET user-service"
    assert "the error coming from api-gateway → GET user-service" in finding["problem"]
