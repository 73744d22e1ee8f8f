"""docker-compose.yml: valid for the real Compose v2, its secrets required, and what no validator checks."""

import json
import re
import subprocess

import pytest

from tests.support.deploy import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO_ROOT,
    compose_model,
    run_compose,
    workspace_members,
)
from titanium_common.addresses import DEFAULT_PORTS

INFRASTRUCTURE = {"postgres", "redis"}
# Each service listens on its default port in Compose too.
PORTS = DEFAULT_PORTS
# The observability profile's services (tests/deploy/test_monitoring.py checks the profile).
OBSERVABILITY_PORTS = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000}


@pytest.fixture(scope="module")
def model():
    return compose_model()


def test_the_compose_file_validates_with_the_example_environment():
    result = run_compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", ["JWT_SECRET", "POSTGRES_PASSWORD"])
def test_it_does_not_validate_without_a_required_secret(tmp_path, secret):
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith(f"{secret}=")]
    env_file = tmp_path / "env"
    env_file.write_text("\n".join(lines) + "\n")
    result = run_compose("config", "--quiet", env_file=env_file)
    assert result.returncode != 0
    assert f"set {secret}" in result.stderr


def test_the_example_environment_names_every_variable_the_file_reads():
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    example = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"[A-Z_]+=", line)}
    assert used == example
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO_ROOT)
    assert ignored.returncode == 0, ".env must stay git-ignored"


def test_every_service_has_a_healthcheck_and_restarts(model):
    for name, service in model["services"].items():
        test = service.get("healthcheck", {}).get("test")
        assert test and not service["healthcheck"].get("disable"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name


def test_every_dependency_waits_for_a_healthy_service(model):
    services = model["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
            assert condition["condition"] == "service_healthy", f"{name} -> {dependency}"


def test_the_start_order_has_no_cycle(model):
    services = model["services"]
    started: set[str] = set()
    while len(started) < len(services):
        ready = {n for n, s in services.items() if n not in started and set(s.get("depends_on", {})) <= started}
        assert ready, f"cycle among {sorted(set(services) - started)}"
        started |= ready


def test_only_the_load_balancer_publishes_a_port(model):
    published = {name: service["ports"] for name, service in model["services"].items() if service.get("ports")}
    assert list(published) == ["load-balancer"]
    (port,) = published["load-balancer"]
    assert (int(port["published"]), port["target"]) == (7100, 7100)


def test_every_suite_service_is_built_from_the_dockerfile_with_a_real_member(model):
    services = workspace_members(with_script=True)
    suite = {name: s for name, s in model["services"].items() if name not in INFRASTRUCTURE}
    assert set(suite) == set(services)
    for name, service in suite.items():
        member = name
        assert service["build"]["args"] == {"SERVICE": member}, name
        assert service["build"]["context"] == str(REPO_ROOT), name
        assert service["build"].get("dockerfile", "Dockerfile") == "Dockerfile", name
        assert service["image"] == f"titanium/{member}", name
        assert service["environment"]["PORT"] == str(PORTS[member]), name
        assert service["read_only"] is True, name


def test_infrastructure_uses_official_images_and_the_database_keeps_a_named_volume(model):
    services = model["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    (volume,) = services["postgres"]["volumes"]
    assert volume["type"] == "volume" and volume["source"] in model["volumes"]


def test_the_balancer_pools_every_gateway_replica_by_the_service_name(model):
    """One api-gateway service with two replicas by default; the balancer resolves its name to every replica."""
    assert model["services"]["api-gateway"]["deploy"]["replicas"] == 2
    environment = model["services"]["load-balancer"]["environment"]
    assert environment["GATEWAY_URLS"] == "http://api-gateway:8000"
    assert environment["DASHBOARD_URLS"] == "http://dashboard-ui:8080"
    assert float(environment["DNS_REFRESH_INTERVAL_S"]) <= 5
    depends_on = set(model["services"]["load-balancer"]["depends_on"])
    assert depends_on == {"api-gateway", "dashboard-ui", "redis"}


def test_the_published_port_is_the_operators_choice(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(ENV_EXAMPLE.read_text().replace("TITANIUM_PORT=7100", "TITANIUM_PORT=17100"))
    (port,) = compose_model(env_file)["services"]["load-balancer"]["ports"]
    assert (port["published"], port["target"]) == ("17100", 7100)


def test_a_stopping_service_gets_longer_than_its_drain(model):
    for name, service in model["services"].items():
        if name in INFRASTRUCTURE:
            continue
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace > float(service["environment"]["SHUTDOWN_TIMEOUT_S"]), name


def test_every_service_url_names_a_compose_service_on_its_port(model):
    services = model["services"]
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            for host, port in re.findall(
                r"(?:https?|postgresql|redis)://(?:[^@/\s,]*@)?([a-z0-9-]+):(\d+)", value or ""
            ):
                # Alertmanager is in the observability profile: in the file, not in the default model.
                assert host in services or host in OBSERVABILITY_PORTS, f"{name} {key} names unknown host {host}"
                expected = {"postgres": 5432, "redis": 6379, **OBSERVABILITY_PORTS}.get(host) or PORTS[host]
                assert int(port) == expected, f"{name} {key}: {host}:{port}"


def test_stores_use_postgresql_and_caches_use_redis(model):
    services = model["services"]
    for name in ("auth-service", "user-service", "blog-service", "edge-config"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql://"), name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("load-balancer", "auth-service", "user-service", "blog-service", "cluster-monitor", "edge-config"):
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://redis:6379/"), name
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert services["auth-service"]["environment"]["JWT_SECRET"] == "change-me-to-32-or-more-random-characters"


def test_the_observability_profile_adds_jaeger_and_the_services_export_to_it(tmp_path):
    """`--profile observability`: Jaeger all-in-one with its UI on the host's loopback; with the endpoint set in
    .env every service sends its spans there, and without the profile nothing of it runs."""
    env_file = tmp_path / "env"
    env_file.write_text(ENV_EXAMPLE.read_text() + "OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318\n")
    result = run_compose("--profile", "observability", "config", "--format", "json", env_file=env_file)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert [(p["host_ip"], p["published"], p["target"]) for p in jaeger["ports"]] == [("127.0.0.1", "16686", 16686)]
    assert jaeger["healthcheck"]["test"] and jaeger["restart"] == "unless-stopped"
    # The suite's own services (built from the Dockerfile), not the profile's other tools.
    suite = {name: s for name, s in services.items() if "build" in s}
    endpoints = {s["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] for s in suite.values()}
    assert suite and endpoints == {"http://jaeger:4318"}
    assert "jaeger" not in compose_model()["services"]
