"""The suite's monitoring as code: every alert is proven by `promtool test rules` (one case where it fires, one where
it stays quiet) and has its runbook; the generated artefacts (the servicemonitor component's PrometheusRule and
Grafana ConfigMaps, Compose's Prometheus configuration, the dashboards' JSON) match their sources; what each place
runs passes Prometheus', Alertmanager's and Kubernetes' own checks."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import MANIFESTS, REPO_ROOT, SERVICES, of_kind, render, run_compose
from titanium_dev import monitoring

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
RULE_TESTS = sorted((monitoring.MONITORING / "tests").glob("*.yml"))

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="Debian's prometheus is missing: run `make deploy-tools`")


def promtool(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, input=input, cwd=REPO_ROOT)


@needs_promtool
def test_rules_pass_promtool_check():
    done = promtool("check", "rules", *map(str, monitoring.RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_unit_tests_pass():
    done = promtool("test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    firing, quiet = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in monitoring.alerts()}
    assert names - firing == set(), "alerts no promtool case makes fire"
    assert names - quiet == set(), "alerts no promtool case keeps quiet"


def test_every_alert_says_what_it_is_and_links_its_runbook():
    runbooks = (REPO_ROOT / "docs" / "runbooks.md").read_text()
    anchors = {heading.strip().lower() for heading in re.findall(r"^## (.+)$", runbooks, re.MULTILINE)}
    for rule in monitoring.alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys(), name
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{name.lower()}"
        assert name.lower() in anchors, f"docs/runbooks.md has no section for {name}"


def test_generated_files_match_their_sources():
    assert monitoring.stale_files() == [], "run `python -m titanium_dev.monitoring`"


def test_the_component_ships_the_rules_and_dashboards_the_sources_make():
    docs = render(MANIFESTS / "tests" / "servicemonitor")
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == monitoring.rule_groups()
    maps = {
        name: m for name, m in of_kind(docs, "ConfigMap").items() if m["metadata"]["labels"].get("grafana_dashboard")
    }
    shipped = {key: json.loads(text) for m in maps.values() for key, text in m["data"].items()}
    assert shipped == monitoring.dashboards()
    # One per service, the overview, the edge devices and the clusters.
    uids = {d["uid"] for d in shipped.values()}
    assert uids == {f"titanium-{s}" for s in SERVICES} | {
        "titanium-overview",
        "titanium-edge-devices",
        "titanium-clusters",
    }
    # Kubernetes refuses a ConfigMap above 1 MiB.
    assert all(len(json.dumps(m["data"])) < 1024 * 1024 for m in maps.values())


@needs_promtool
def test_the_prometheus_rule_passes_promtool(tmp_path):
    (rule,) = [d for d in render(MANIFESTS / "tests" / "servicemonitor") if d["kind"] == "PrometheusRule"]
    path = tmp_path / "rule.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_every_dashboard_query_parses(tmp_path):
    """promtool parses every panel's expression (as a recording rule); tests/system runs them against the suite."""
    queries = [(name, *q) for name, d in monitoring.dashboards().items() for q in monitoring.panel_queries(d)]
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, _, expr) in enumerate(queries)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(queries) > 4 * len(SERVICES)


@needs_promtool
def test_compose_prometheus_configuration_passes_promtool(tmp_path):
    config = yaml.safe_load(monitoring.COMPOSE_PROMETHEUS.read_text())
    # The container's rule path, pointed at the files the profile mounts there.
    config["rule_files"] = [str(path) for path in monitoring.RULE_FILES]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    done = promtool("check", "config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert [job["job_name"] for job in config["scrape_configs"]] == list(SERVICES)


@pytest.mark.skipif(AMTOOL is None, reason="Debian's prometheus-alertmanager is missing: run `make deploy-tools`")
def test_alertmanager_configuration_passes_amtool():
    done = subprocess.run(
        [AMTOOL, "check-config", str(monitoring.ALERTMANAGER_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_observability_profile_runs_the_official_images_on_the_one_source():
    """The real Compose v2 resolves the profile (the images cannot be pulled here: this is what can be proven)."""
    result = run_compose("--profile", "observability", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    images = {name: services[name]["image"].split(":")[0] for name in ("prometheus", "alertmanager", "grafana")}
    assert images == {
        "prometheus": "prom/prometheus",
        "alertmanager": "prom/alertmanager",
        "grafana": "grafana/grafana",
    }
    mounts = {
        (name, Path(v["source"]).relative_to(REPO_ROOT).as_posix(), v["target"])
        for name in images
        for v in services[name]["volumes"]
        if v["type"] == "bind"
    }
    assert {
        ("prometheus", "monitoring/compose/prometheus.yml", "/etc/prometheus/prometheus.yml"),
        ("prometheus", "monitoring/rules", "/etc/prometheus/rules"),
        ("alertmanager", "monitoring/alertmanager.yml", "/etc/alertmanager/alertmanager.yml"),
        ("grafana", "monitoring/grafana/datasources.yml", "/etc/grafana/provisioning/datasources/titanium.yml"),
        ("grafana", "monitoring/dashboards", "/var/lib/grafana/dashboards/titanium"),
    } <= mounts
    # Grafana's provisioning reads the dashboards where they are mounted, from the data source Compose names.
    provider = yaml.safe_load((monitoring.MONITORING / "grafana" / "dashboards.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/titanium"
    source = yaml.safe_load((monitoring.MONITORING / "grafana" / "datasources.yml").read_text())["datasources"][0]
    assert (source["type"], source["url"], source["isDefault"]) == ("prometheus", "http://prometheus:9090", True)
    # The compose Prometheus configuration scrapes every service by its Compose name and alerts the profile's
    # Alertmanager, which ops-mcp reads.
    config = yaml.safe_load(monitoring.COMPOSE_PROMETHEUS.read_text())
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert {t.split(":")[0] for t in targets} <= set(services)
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert services["ops-mcp"]["environment"]["ALERTMANAGER_URL"] == "http://alertmanager:9093"
    # Published on loopback only; Grafana's admin password is the operator's.
    for name in images:
        assert all(p.get("host_ip") == "127.0.0.1" for p in services[name].get("ports", [])), name
    assert "GRAFANA_ADMIN_PASSWORD" in (REPO_ROOT / ".env.example").read_text()
