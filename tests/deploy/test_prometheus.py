"""Prometheus for real: every service's /metrics passes `promtool check metrics`, and a real Prometheus, given the
scrape configuration the ServiceMonitors describe, scrapes the running suite (started by the same launcher as
`make run`, on free loopback ports): every target up, and the load balancer's request counter holds the requests
this test sent."""

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.deploy import LOCAL_NAMESPACE, MANIFESTS, SERVICES, of_kind, render, unprefixed
from tests.support.servers import free_port
from titanium_dev.suite import SERVICES as SUITE_SERVICES
from titanium_dev.suite import Suite

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
# The ServiceMonitors scrape every 15 s; the test scrapes every second so that it does not wait for minutes.
TEST_SCRAPE_INTERVAL = "1s"
SENT = 25
WAIT_S = 60.0

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None, reason="Debian's prometheus is missing: run `make deploy-tools`"
)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    OUTPUT.mkdir(exist_ok=True)
    ports = {spec.name: free_port() for spec in SUITE_SERVICES}
    with (
        open(OUTPUT / "prometheus-suite.log", "w") as log,
        Suite(ports=ports, data_dir=tmp_path_factory.mktemp("data"), echo=log) as running,
    ):
        yield running


def scrape_configs(suite: Suite) -> list[dict]:
    """What the Prometheus Operator generates from the ServiceMonitors, with each Service's endpoints replaced by
    the suite process behind it: one job per ServiceMonitor endpoint, named as the operator names it."""
    docs = render(MANIFESTS / "tests" / "servicemonitor")
    services = of_kind(docs, "Service")
    jobs = []
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        chosen = [s for s in services.values() if selector.items() <= s["metadata"]["labels"].items()]
        if not chosen:  # edge-exporter: Services edge-config creates for devices; none here
            continue
        (service,) = chosen
        app = unprefixed(service["spec"]["selector"]["app"])
        for index, endpoint in enumerate(monitor["spec"]["endpoints"]):
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
            labels = {"namespace": LOCAL_NAMESPACE, "service": service["metadata"]["name"]}
            if "jobLabel" in monitor["spec"]:  # the operator's job label: that label's value on the Service
                labels["job"] = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
            jobs.append(
                {
                    "job_name": f"serviceMonitor/{LOCAL_NAMESPACE}/{monitor['metadata']['name']}/{index}",
                    "metrics_path": endpoint["path"],
                    "scrape_interval": TEST_SCRAPE_INTERVAL,
                    "scrape_timeout": TEST_SCRAPE_INTERVAL,
                    "static_configs": [{"targets": [f"127.0.0.1:{suite.ports[app]}"], "labels": labels}],
                }
            )
    return jobs


def query(base: str, expression: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=5) as answer:
        body = json.load(answer)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(check, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"not within {WAIT_S:.0f} s: {what}")


def test_every_services_metrics_pass_promtool(suite):
    for service in SERVICES:
        body = httpx.get(f"{suite.url(service)}/metrics", timeout=10).text
        done = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{service}: {done.stdout}{done.stderr}"
        assert "http_requests_total" in body


def test_prometheus_scrapes_the_suite_as_the_servicemonitors_describe(suite, tmp_path):
    jobs = scrape_configs(suite)
    assert {job["static_configs"][0]["labels"]["service"] for job in jobs} == {
        "local-load-balancer-service" if s == "load-balancer" else f"local-{s}" for s in SERVICES
    }
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"evaluation_interval": "1s"}, "scrape_configs": jobs}))
    checked = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with open(OUTPUT / "prometheus.log", "w") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            run_against(base, suite, jobs)
        finally:
            server.terminate()
            server.wait(timeout=30)


def run_against(base: str, suite: Suite, jobs: list[dict]) -> None:
    def targets_up():
        try:
            with urllib.request.urlopen(f"{base}/api/v1/targets", timeout=2) as answer:
                active = json.load(answer)["data"]["activeTargets"]
        except OSError:
            return None
        return len(active) == len(jobs) and all(t["health"] == "up" for t in active) and active

    active = wait_for(targets_up, "every target up")
    assert {t["scrapePool"] for t in active} == {job["job_name"] for job in jobs}

    before = get_counts(suite)
    for _ in range(SENT):
        assert httpx.get(f"{suite.url('load-balancer')}/api/posts", timeout=10).status_code == 200
    after = get_counts(suite)
    (route,) = [r for r in after if after[r] - before.get(r, 0) == SENT]
    expression = f'sum(http_requests_total{{job="load-balancer", method="GET", status="200", route="{route}"}})'

    def counted():
        return [r for r in query(base, expression) if float(r["value"][1]) == after[route]]

    wait_for(counted, f"the load balancer's {after[route]:.0f} GET {route} requests in Prometheus")
    up = query(base, "up")
    assert len(up) == len(jobs) and all(r["value"][1] == "1" for r in up)
    # The rules and dashboards group by job: the service's own name.
    assert {r["metric"]["job"] for r in up} == set(SERVICES)


def get_counts(suite: Suite) -> dict[str, float]:
    """The load balancer's own count of answered GETs (status 200) by route, from its /metrics."""
    text = httpx.get(f"{suite.url('load-balancer')}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "http_requests_total" and labels["method"] == "GET" and labels["status"] == "200":
                counts[labels["route"]] = counts.get(labels["route"], 0) + sample.value
    return counts
