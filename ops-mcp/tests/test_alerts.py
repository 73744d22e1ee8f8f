"""ops-mcp reads a real Alertmanager (Debian's, on a loopback port): `GET /api/ops/alerts` lists what fires there,
diagnose() cites it; Alertmanager unset, stopped or not Alertmanager at all: "alerts unavailable", never an
error."""

import asyncio
import shutil
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiohttp import web

from ops_mcp.main import create_app
from tests.support.servers import AppServer, free_port, serving
from titanium_dev.observability import Observability

from .test_cluster_findings import settings_with

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus-alertmanager") is None or shutil.which("prometheus") is None,
    reason="Debian's prometheus-alertmanager is missing: run `make observability-tools`",
)


def alert(name: str, severity: str, job: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "job": job, "instance": f"127.0.0.1:{free_port()}"},
        "annotations": {
            "summary": f"{job} trouble",
            "description": f"{job} has trouble",
            "runbook_url": f"docs/runbooks.md#{name.lower()}",
        },
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


@pytest.fixture
async def alertmanager():
    watch = Observability({}, prometheus_port=free_port(), alertmanager_port=free_port())
    await asyncio.to_thread(watch.start)
    yield watch
    await asyncio.to_thread(watch.stop)


async def test_firing_alerts_are_listed_and_cited_by_the_diagnosis(alertmanager):
    async with httpx.AsyncClient(timeout=10) as client:
        posted = await client.post(
            f"{alertmanager.alertmanager_url}/api/v2/alerts",
            json=[
                alert("TitaniumErrorBudgetSlowBurn", "ticket", "blog-service"),
                alert("TitaniumTargetDown", "page", "user-service"),
            ],
        )
        assert posted.status_code == 200
        ops = create_app(settings_with(alertmanager_url=alertmanager.alertmanager_url))
        async with serving(ops) as ops_url:
            # No token needed: the dashboard's panel reads it as the diagnosis is read.
            listed = (await client.get(f"{ops_url}/api/ops/alerts")).json()
            assert listed["available"] is True and listed["error"] is None
            assert [(a["name"], a["service"], a["severity"]) for a in listed["alerts"]] == [
                ("TitaniumTargetDown", "user-service", "page"),
                ("TitaniumErrorBudgetSlowBurn", "blog-service", "ticket"),
            ]
            assert listed["alerts"][0]["runbook_url"] == "docs/runbooks.md#titaniumtargetdown"
            report = (await client.get(f"{ops_url}/api/ops/diagnosis")).json()
        cited = {f["problem"]: f for f in report["findings"] if f["problem"].startswith("alert ")}
        page = cited["alert TitaniumTargetDown is firing: user-service trouble"]
        assert page["severity"] == "critical" and page["subject"] == "user-service"
        assert "docs/runbooks.md#titaniumtargetdown" in page["next_step"]
        assert cited["alert TitaniumErrorBudgetSlowBurn is firing: blog-service trouble"]["severity"] == "warning"
        assert f"Alertmanager {alertmanager.alertmanager_url}" in report["checked"]


async def test_alertmanager_stopped_unset_or_wrong_is_alerts_unavailable(alertmanager):
    async def not_alertmanager(request: web.Request) -> web.Response:
        return web.Response(text="<html>a login page</html>", content_type="text/html")

    impostor = web.Application()
    impostor.router.add_get("/api/v2/alerts", not_alertmanager)
    async with AppServer(impostor) as wrong, httpx.AsyncClient(timeout=10) as client:
        stopped = alertmanager.alertmanager_url
        await asyncio.to_thread(alertmanager.stop)
        for url, why in ((stopped, "ClientConnectorError"), ("", "ALERTMANAGER_URL is not set"), (wrong.url, "")):
            ops = create_app(settings_with(alertmanager_url=url))
            async with serving(ops) as ops_url:
                answer = await client.get(f"{ops_url}/api/ops/alerts")
                assert answer.status_code == 200, url
                body = answer.json()
                assert body["available"] is False and body["alerts"] == []
                assert body["error"].startswith("alerts unavailable") and why in body["error"], body
                report = (await client.get(f"{ops_url}/api/ops/diagnosis")).json()
                assert body["error"] in report["checked"]
