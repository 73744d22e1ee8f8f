"""Alerts proven end to end, with Debian's Prometheus and Alertmanager as `OBSERVABILITY=1 make run` starts them
(dev/titanium_dev/observability.py) next to the real suite:

- user-service SIGSTOPped under light load: TitaniumTargetDown naming it reaches Alertmanager's API within 90 s,
  and leaves it within 90 s of SIGCONT;
- a burn-rate alert from injected 5xx: a test double (the kit's own aiohttp app, so its metrics are the services'
  metrics) answers 503 to half its requests, and Prometheus evaluates the production rules with their windows and
  `for` durations scaled down (the expressions keep their shape);
- every Grafana panel's query, run against that Prometheus scraping the suite under load, answers and is not empty;
- the dashboard in Chromium opens with the balancer's history in its charts (again after a reload) and lists what
  Alertmanager holds; the MCP tool `alerts` and diagnose() say the same.

The measured times go to test-output/alert-timings.json.
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta

import httpx
import httpx2
import pytest
import yaml
from aiohttp import web
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.browser import screenshot
from tests.support.polling import eventually
from tests.support.servers import free_port
from tests.system.conftest import ADMIN, OUTPUT
from titanium_common.aiohttp_app import create_aiohttp_app
from titanium_common.settings import ServiceSettings
from titanium_dev import monitoring
from titanium_dev.observability import Observability, suite_targets
from titanium_dev.suite import SERVICES, Suite

ALERT_LIMIT_S = 90.0
# Through the balancer: every service answers something (a 401 or 404 is a served request, not an error).
LOAD_PATHS = (
    "/api/posts",
    "/api/users",
    "/api/auth/verify",
    "/api/clusters",
    "/api/edge/devices",
    "/api/ops/status",
    "/",
)

MISSING = [name for name in ("prometheus", "prometheus-alertmanager") if shutil.which(name) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"{MISSING} missing: run `make observability-tools`")


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The suite and, next to it, Prometheus and Alertmanager on free ports; ops-mcp reads that Alertmanager."""
    OUTPUT.mkdir(exist_ok=True)
    alertmanager_port = free_port()
    ports = {spec.name: free_port() for spec in SERVICES}
    env = {"ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1]}
    env["ALERTMANAGER_URL"] = f"http://127.0.0.1:{alertmanager_port}"
    with (
        open(OUTPUT / "alerts-suite.log", "w") as log,
        Suite(ports=ports, data_dir=tmp_path_factory.mktemp("data"), echo=log, extra_env=env) as suite,
        Observability(
            suite_targets(suite), prometheus_port=free_port(), alertmanager_port=alertmanager_port, echo=log
        ) as watch,
    ):
        yield suite, watch


async def load(base: str, stop: asyncio.Event, every_s: float = 0.1) -> None:
    """Light load through the balancer: about ten requests a second, round the services."""
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        i = 0
        while not stop.is_set():
            # A stopped service makes some of these time out: that is the point.
            with contextlib.suppress(httpx.HTTPError):
                await client.get(LOAD_PATHS[i % len(LOAD_PATHS)])
            i += 1
            await asyncio.sleep(every_s)


def firing(watch: Observability, alertname: str, **labels: str) -> list[dict]:
    return [
        a
        for a in watch.alerts()
        if a["labels"].get("alertname") == alertname
        and labels.items() <= a["labels"].items()
        and a["status"]["state"] == "active"
    ]


def record_timing(name: str, seconds: float) -> None:
    path = OUTPUT / "alert-timings.json"
    timings = json.loads(path.read_text()) if path.exists() else {}
    timings[name] = round(seconds, 1)
    path.write_text(json.dumps(timings, indent=2))


async def test_a_stopped_user_service_is_alerted_and_resolved(watched):
    suite, watch = watched
    stop = asyncio.Event()
    loader = asyncio.create_task(load(suite.url("load-balancer"), stop))
    pid = suite.processes["user-service"].proc.pid
    try:
        await eventually(lambda: watch.query('up{job="user-service"} == 1'), timeout_s=30)
        assert not firing(watch, "TitaniumTargetDown")
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            (alert,) = await eventually(
                lambda: firing(watch, "TitaniumTargetDown", job="user-service"), ALERT_LIMIT_S, every_s=0.5
            )
            fired_s = time.monotonic() - stopped
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        assert alert["labels"]["severity"] == "page"
        assert alert["annotations"]["summary"].startswith("user-service replica")
        assert alert["annotations"]["runbook_url"] == "docs/runbooks.md#titaniumtargetdown"
        # No other service was said to be down.
        assert {a["labels"]["job"] for a in firing(watch, "TitaniumTargetDown")} == {"user-service"}
        await eventually(lambda: not firing(watch, "TitaniumTargetDown"), ALERT_LIMIT_S, every_s=0.5)
        resolved_s = time.monotonic() - resumed
    finally:
        stop.set()
        await loader
    record_timing("target_down_fired_after_sigstop_s", fired_s)
    record_timing("target_down_resolved_after_sigcont_s", resolved_s)


# The production windows and `for` durations, divided by this: 5m → 10 s, 1h → 2 m, for: 2m → 4 s.
SCALE = 30
DURATION = re.compile(r"(\[|for: )(\d+)([smhd])(\]?)")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def scaled_rules(text: str, scale: int) -> str:
    """The rule file with every range and `for` divided by `scale` (whole seconds); nothing else changes."""

    def shorter(match: re.Match) -> str:
        seconds = max(1, int(match[2]) * SECONDS[match[3]] // scale)
        return f"{match[1]}{seconds}s{match[4]}"

    return DURATION.sub(shorter, text)


def test_scaling_changes_only_the_durations():
    text = "expr: sum by (job) (rate(x[5m])) > 14.4 * 0.001\n    for: 2m\n"
    assert scaled_rules(text, 30) == "expr: sum by (job) (rate(x[10s])) > 14.4 * 0.001\n    for: 4s\n"


FAULT = web.AppKey("fault", dict)


def error_injector() -> web.Application:
    """The test double: the kit's aiohttp app (its request metrics are every service's) with one route whose
    answers the test sets: 503 for `failing` of every `of` requests."""
    app = create_aiohttp_app(ServiceSettings(service_name="error-injector", env="test"))
    fault = {"failing": 0, "of": 2, "seen": 0}

    async def answer(request: web.Request) -> web.Response:
        fault["seen"] += 1
        if fault["seen"] % fault["of"] < fault["failing"]:
            return web.json_response({"detail": "injected fault"}, status=503)
        return web.json_response({"ok": True})

    app.router.add_get("/api/answer", answer)
    app[FAULT] = fault
    return app


async def test_injected_5xx_fire_the_fast_burn_alert(servers, tmp_path):
    app = error_injector()
    injector = await servers(app)
    rules = tmp_path / "titanium.rules.yml"
    rules.write_text(scaled_rules(monitoring.RULE_FILES[0].read_text(), SCALE))
    target = {"error-injector": [f"127.0.0.1:{injector.port}"]}
    watch = Observability(target, prometheus_port=free_port(), alertmanager_port=free_port(), rule_files=[rules])
    await asyncio.to_thread(watch.start)
    stop = asyncio.Event()
    loader = asyncio.create_task(load_double(injector.url, stop))
    try:
        # Healthy first: requests flow, the ratio is 0, nothing fires.
        await eventually(lambda: watch.query('job:titanium_error_ratio:rate5m{job="error-injector"} == 0'), 60)
        assert not firing(watch, "TitaniumErrorBudgetFastBurn")
        app[FAULT]["failing"] = 1  # half the answers are 503 from now on
        injected = time.monotonic()
        (alert,) = await eventually(
            lambda: firing(watch, "TitaniumErrorBudgetFastBurn", job="error-injector"), ALERT_LIMIT_S, 0.5
        )
        record_timing("fast_burn_fired_after_injection_s (windows / 30)", time.monotonic() - injected)
        assert alert["labels"]["severity"] == "page"
        assert alert["labels"]["slo"] == "availability"
    finally:
        stop.set()
        await loader
        await asyncio.to_thread(watch.stop)


async def load_double(base: str, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while not stop.is_set():
            await client.get("/api/answer")
            await asyncio.sleep(0.05)


async def test_every_dashboard_panel_query_answers_with_data(watched):
    suite, watch = watched
    stop = asyncio.Event()
    loader = asyncio.create_task(load(suite.url("load-balancer"), stop, every_s=0.05))
    queries = [(name, *q) for name, d in monitoring.dashboards().items() for q in monitoring.panel_queries(d)]
    try:
        # The 5-minute recording rules need two scrapes of every service's requests first.
        await eventually(
            lambda: len(watch.query("job:titanium_error_ratio:rate5m >= 0")) == len(SERVICES), 90, every_s=1
        )

        def empty() -> list[str]:
            return [f"{name}: {title}: {expr}" for name, title, expr in queries if not watch.query(expr)]

        missing: list[str] = []

        def all_answer() -> bool:
            missing[:] = empty()
            return not missing

        try:
            await eventually(all_answer, 60, every_s=2)
        except TimeoutError:
            pytest.fail("panels with no data:\n" + "\n".join(missing))
    finally:
        stop.set()
        await loader


def alert_for(job: str) -> dict:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": "TitaniumErrorBudgetSlowBurn", "severity": "ticket", "job": job, "slo": "availability"},
        "annotations": {
            "summary": f"{job} is burning its error budget",
            "description": "posted by the test",
            "runbook_url": "docs/runbooks.md#titaniumerrorbudgetslowburn",
        },
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }


async def test_the_dashboard_opens_with_history_and_shows_what_alertmanager_holds(watched, browser_page):
    suite, watch = watched
    page, log = browser_page
    lb = suite.url("load-balancer")
    async with httpx.AsyncClient(timeout=10) as client:
        posted = await client.post(f"{watch.alertmanager_url}/api/v2/alerts", json=[alert_for("blog-service")])
        assert posted.status_code == 200
        stop = asyncio.Event()
        loader = asyncio.create_task(load(lb, stop))

        async def remembered() -> list:
            body = (await client.get(f"{lb}/stats/history", params={"window": "300"})).json()
            return [p for p in body["points"] if p["requests_per_second"] > 0]

        try:
            # A 10 s slot with traffic in it, closed and remembered.
            await eventually(remembered, timeout_s=60, every_s=1)
        finally:
            stop.set()
            await loader
        await page.goto(lb + "/")
        await page.wait_for_function("() => Number(document.body.dataset.historyPoints || 0) > 0", timeout=20_000)
        await page.wait_for_selector("#alerts-panel[data-state='firing']", timeout=20_000)
        assert "TitaniumErrorBudgetSlowBurn: blog-service is burning its error budget" in await page.inner_text(
            "#alerts-panel"
        )
        # A reload: the charts hold the remembered points again at once, not one live point.
        await page.reload()
        await page.wait_for_function("() => Number(document.body.dataset.historyPoints || 0) > 0", timeout=20_000)
        rps = await page.evaluate("Chart.getChart(document.getElementById('rps-chart')).data.datasets[0].data")
        assert len(rps) > 1 and max(v for v in rps if v is not None) > 0
        await screenshot(page, "dashboard-real-suite-history-and-alerts")
        assert log.errors == []

        token = (await client.post(f"{lb}/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(lb + "/mcp", http_client=http)) as mcp,
        ):
            result = await mcp.call_tool("alerts", {})
        assert not result.is_error, result.content
        listed = result.structured_content
        assert listed["available"] is True
        assert ("TitaniumErrorBudgetSlowBurn", "blog-service") in {(a["name"], a["service"]) for a in listed["alerts"]}
        report = (await client.get(f"{lb}/api/ops/diagnosis")).json()
        assert any(f["problem"].startswith("alert TitaniumErrorBudgetSlowBurn") for f in report["findings"])


def test_with_replicas_every_replica_is_a_target_and_the_configuration_passes_promtool(tmp_path):
    suite = Suite(replicas=2, data_dir=tmp_path, echo=None)
    watch = Observability(suite_targets(suite), prometheus_port=free_port(), alertmanager_port=free_port())
    config = watch.config()
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert set(jobs) == {spec.name for spec in SERVICES}
    assert jobs["load-balancer"] == ["127.0.0.1:7100", "127.0.0.1:7101"]
    assert jobs["user-service"] == ["127.0.0.1:8002", "127.0.0.1:8012"]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    checked = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
