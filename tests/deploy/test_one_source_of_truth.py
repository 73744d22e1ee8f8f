"""One source of truth: the service catalogue (titanium_common.catalog) decides every list of services in the code,
Compose and the manifests; the settings classes decide what Compose and the manifests must set; and the three
deployment descriptions (docker-compose.yml, skaffold.yaml, k8s-manifests) agree on images, ports, probe paths and
who talks to whom."""

import re
from typing import get_args
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml

from api_gateway.settings import PREFIXES, GatewaySettings
from dashboard_ui.main import create_app as create_dashboard
from dashboard_ui.settings import DashboardSettings
from load_balancer import stats as lb_stats
from load_balancer.main import create_app as create_load_balancer
from load_balancer.settings import LoadBalancerSettings
from ops_mcp.schemas import SERVICE_NAMES, ServiceName
from ops_mcp.settings import OpsSettings
from tests.support.deploy import (
    DATABASE_SERVICES,
    LOCAL_PREFIX,
    LOOPBACK,
    MANIFESTS,
    REPO_ROOT,
    SERVICES,
    compose,
    compose_environment,
    container_env,
    kustomizations,
    of_kind,
    pod_spec,
    render,
    required_in_deployment,
    settings_classes,
    skaffold_modules,
    unprefixed,
)
from tests.support.servers import serving
from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.api_docs import DOCUMENTED_SERVICES
from titanium_common.catalog import CATALOGUE
from titanium_common.db import DatabaseSettings
from titanium_dev.suite import SERVICES as SUITE_SERVICES
from titanium_dev.suite import Suite

SETTINGS = {entry.service: entry.cls for entry in settings_classes()}
APP_TREES = [p for p in kustomizations() if p.name != "loadgenerator"]
# Variables a Deployment sets only to build another one ($(POSTGRES_PASSWORD) inside DATABASE_URL).
HELPER_VARIABLES = {"POSTGRES_PASSWORD", "POSTGRES_HOST"}
_ADDRESS = re.compile(r"^(?:https?|redis|postgresql)://")


def test_every_service_and_the_common_base_has_a_settings_class():
    assert set(SETTINGS) == {*SERVICES, "common"}
    base = SETTINGS["common"]
    assert all(issubclass(cls, base) for cls in SETTINGS.values())
    assert {"HOST", "DATABASE_URL", "JWT_SECRET", "REDIS_URL", "GATEWAY_URLS"} <= set().union(
        *(required_in_deployment(cls) for cls in SETTINGS.values())
    ), "the rule that decides what is required still sees the settings that matter"
    with_database = {service for service, cls in SETTINGS.items() if issubclass(cls, DatabaseSettings)}
    assert with_database == set(DATABASE_SERVICES), "the services with a database (startup probe, PostgreSQL)"


# ---- the catalogue ------------------------------------------------------------------------------------------

NAMES = CATALOGUE.names()
# The services that hold a pool over others: their settings have a URL setting for each one.
POOLING_CALLERS = sorted({caller for service in CATALOGUE for caller in service.pooled_by})


def test_the_catalogue_lists_exactly_the_services_built_from_the_workspace():
    assert set(NAMES) == set(SERVICES)
    for service in CATALOGUE:
        assert (REPO_ROOT / service.name / service.package / "__init__.py").is_file(), service.name
        assert SETTINGS[service.name].model_fields["port"].default == service.port == DEFAULT_PORTS[service.name]
        assert SETTINGS[service.name].model_fields["service_name"].default == service.name


def test_default_addresses_come_from_the_catalogue():
    assert CATALOGUE.default_ports() == DEFAULT_PORTS
    for service in CATALOGUE:
        assert local_url(service.name) == f"http://127.0.0.1:{service.port}"


@pytest.mark.parametrize("caller", POOLING_CALLERS)
def test_every_pooling_caller_has_a_url_setting_for_each_service_it_pools_and_no_other(caller):
    cls = SETTINGS[caller]
    fields = set(cls.model_fields)
    expected = {service.url_field for service in CATALOGUE.pooled_by(caller)}
    assert expected <= fields, f"{caller}: no setting for {sorted(expected - fields)}"
    others = {s.url_field for s in CATALOGUE if s.name not in {x.name for x in CATALOGUE.pooled_by(caller)}}
    assert not others & fields, f"{caller}: hand-typed addresses outside the catalogue: {sorted(others & fields)}"
    assert set(cls().service_replicas()) == {s.name for s in CATALOGUE.pooled_by(caller)}


def test_the_gateway_routes_exactly_the_catalogues_prefixes_and_pools_every_routed_service():
    assert CATALOGUE.routes() == PREFIXES
    settings = GatewaySettings()
    assert settings.prefixes() == CATALOGUE.routes()
    assert set(settings.service_replicas()) >= set(CATALOGUE.routes().values())


def test_the_launcher_starts_the_catalogue_in_its_start_order_and_gives_each_pool_every_replica(tmp_path):
    assert CATALOGUE.start_order() == SUITE_SERVICES
    suite = Suite(replicas=2, data_dir=tmp_path, echo=None)
    for caller in CATALOGUE:
        env = suite.env_for(caller)
        for service in CATALOGUE:
            replicas = suite.replica_names(service.name) if caller.name in service.pooled_by else [service.name]
            assert env[service.url_setting] == ",".join(map(suite.url, replicas)), (caller.name, service.name)


def test_ops_mcp_names_every_service_it_reads():
    names = tuple(service.name for service in CATALOGUE.pooled_by("ops-mcp"))
    assert SERVICE_NAMES == names == get_args(ServiceName)
    assert tuple(OpsSettings().service_urls()) == names


async def test_the_balancers_stats_reads_every_probed_service_in_catalogue_order(monkeypatch):
    asked = {}

    async def recorded(client, targets, timeout_s):
        asked.update(targets)
        return {name: {"service_status": "online"} for name in targets}

    monkeypatch.setattr(lb_stats, "fetch_all", recorded)
    app = create_load_balancer(LoadBalancerSettings(env="test"))
    async with serving(app):
        await lb_stats.fan_out(app)
    assert list(asked) == [s.name for s in CATALOGUE.probed()]
    for service in CATALOGUE.probed():
        assert asked[service.name] == [local_url(service.name)]


def test_the_api_docs_page_lists_the_documented_services_in_catalogue_order():
    assert tuple(s.name for s in CATALOGUE.documented()) == DOCUMENTED_SERVICES
    assert list(DashboardSettings().api_docs()) == list(DOCUMENTED_SERVICES)


async def test_the_dashboard_is_served_the_catalogues_order_and_types_none_of_its_own():
    async with serving(create_dashboard(DashboardSettings(env="test"))) as url, aiohttp.ClientSession() as session:
        answer = await session.get(url + "/dashboard-config.json")
        config = await answer.json()
    assert config["services"] == list(NAMES)
    script = (REPO_ROOT / "dashboard-ui" / "static" / "app.js").read_text()
    for literal in re.findall(r"\[[^\[\]]*\]", script):
        listed = [name for name in NAMES if f'"{name}"' in literal]
        assert len(listed) < 3, f"app.js types a list of services: {literal[:200]}"


def test_compose_runs_every_catalogued_service_and_gives_each_pool_its_services_addresses():
    services = compose()["services"]
    for caller in POOLING_CALLERS:
        env = compose_environment(services[caller])
        for service in CATALOGUE.pooled_by(caller):
            value = env.get(service.url_setting, "")
            assert value, f"compose {caller}: {service.url_setting} not set"
            for address in value.split(","):
                url = urlsplit(address)
                assert url.hostname == service.name, f"compose {caller} {service.url_setting}={address}"
                assert url.port == (compose_port(services[service.name]) or service.port)
    # edge-config refuses every address of the suite's own for a device.
    suite = {urlsplit(a).hostname for a in compose_environment(services["edge-config"])["SUITE_URLS"].split(",")}
    assert suite == set(NAMES)


def test_the_readmes_ports_table_lists_the_catalogue():
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Ports", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    assert [(name.strip(), int(port)) for name, port in rows] == list(CATALOGUE.default_ports().items())


def test_the_manifests_have_one_file_per_service_and_give_each_pool_its_services_addresses():
    base = MANIFESTS / "base"
    resources = yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
    for service in CATALOGUE:
        assert f"{service.name}.yaml" in resources, f"k8s-manifests/base lists no {service.name}.yaml"
        kinds = {doc["kind"] for doc in yaml.safe_load_all((base / f"{service.name}.yaml").read_text()) if doc}
        assert {"Deployment", "Service"} <= kinds, service.name
    for tree in APP_TREES:
        docs = render(tree)
        prefix = prefix_of(docs)
        services = of_kind(docs, "Service")
        for caller in POOLING_CALLERS:
            env = service_env(docs, caller, prefix)
            for service in CATALOGUE.pooled_by(caller):
                value = env.get(service.url_setting, "")
                assert value, f"{tree.name} {caller}: {service.url_setting} not set"
                for address in value.split(","):
                    url = urlsplit(address)
                    target = services[url.hostname]["spec"]
                    assert unprefixed(target["selector"]["app"], prefix) == service.name, (caller, address)
                    assert url.port == service.port, (caller, address)
        suite_urls = service_env(docs, "edge-config", prefix)["SUITE_URLS"].split(",")
        apps = {unprefixed(services[urlsplit(a).hostname]["spec"]["selector"]["app"], prefix) for a in suite_urls}
        assert apps == set(NAMES), f"{tree.name}: edge-config's SUITE_URLS"


def service_env(docs, name: str, prefix: str) -> dict[str, str]:
    deployment = of_kind(docs, "Deployment")[prefix + name]
    (container,) = pod_spec(deployment)["containers"]
    return container_env(docs, deployment, container)


def prefix_of(docs) -> str:
    return LOCAL_PREFIX if f"{LOCAL_PREFIX}api-gateway" in of_kind(docs, "Deployment") else ""


@pytest.mark.parametrize("tree", APP_TREES, ids=[str(p.relative_to(MANIFESTS)) for p in APP_TREES])
def test_the_manifests_set_every_required_setting_and_only_real_ones(tree):
    docs = render(tree)
    prefix = prefix_of(docs)
    for service in SERVICES:
        cls = SETTINGS[service]
        env = service_env(docs, service, prefix)
        missing = {name for name in required_in_deployment(cls) if not env.get(name)}
        assert not missing, f"{service}: required settings not set in its Deployment: {sorted(missing)}"
        known = {name.upper() for name in cls.model_fields} | HELPER_VARIABLES
        assert set(env) <= known, f"{service}: variables no setting reads: {sorted(set(env) - known)}"
        loopback = {k: v for k, v in env.items() if LOOPBACK.search(v)}
        assert not loopback, f"{service}: loopback addresses in a pod: {loopback}"


def container_ports(docs) -> dict[str, int]:
    """Deployment/StatefulSet pod label `app` (unprefixed) → its one container port."""
    ports = {}
    for workload in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "StatefulSet").values()]:
        (container,) = pod_spec(workload)["containers"]
        app = unprefixed(workload["spec"]["template"]["metadata"]["labels"]["app"])
        ports[app] = container["ports"][0]["containerPort"]
    return ports


@pytest.mark.parametrize("tree", APP_TREES, ids=[str(p.relative_to(MANIFESTS)) for p in APP_TREES])
def test_every_address_in_the_manifests_names_a_service_and_its_port(tree):
    docs = render(tree)
    services = of_kind(docs, "Service")
    ports = container_ports(docs)
    for service in SERVICES:
        env = service_env(docs, service, prefix_of(docs))
        assert int(env["PORT"]) == ports[service] == SETTINGS[service].model_fields["port"].default
        for name, value in env.items():
            for address in value.split(",") if _ADDRESS.match(value) and name not in OUTSIDE_ADDRESSES else []:
                url = urlsplit(address)
                target = services.get(url.hostname)
                assert target is not None, f"{service} {name}={address}: no Service {url.hostname}"
                (port,) = [p for p in target["spec"]["ports"] if p["port"] == url.port]
                app = unprefixed(target["spec"]["selector"]["app"])
                assert ports[app] == url.port, f"{service} {name}: {app} listens on {ports[app]}, not {url.port}"
                assert port["targetPort"] in (url.port, "http", "redis", "postgres")


# What the balancing pools are given (the load balancer's, and the gateway's: each upstream URL is a pool), and the
# services the load balancer's /stats reads every replica of: a host name they resolve to every replica.
# ops-mcp is given every replica's address on one machine, but resolves no host name to its pods: in a cluster it
# reads one replica of each service, through the ClusterIP Service.
POOLS = {caller: {s.url_setting for s in CATALOGUE.pooled_by(caller)} for caller in ("load-balancer", "api-gateway")}


@pytest.mark.parametrize("tree", APP_TREES, ids=[str(p.relative_to(MANIFESTS)) for p in APP_TREES])
def test_the_balancing_pools_name_headless_services_and_everyone_else_a_cluster_ip(tree):
    """A ClusterIP Service would pin a pool's keep-alive connections to one pod; a headless one resolves to each
    ready pod, which the pools balance over. Single callers keep the ClusterIP (the kernel spreads connections)."""
    docs = render(tree)
    services = of_kind(docs, "Service")
    prefix = prefix_of(docs)
    for service in SERVICES:
        env = service_env(docs, service, prefix)
        for name, value in env.items():
            skipped = REFUSED_ADDRESSES | OUTSIDE_ADDRESSES
            for address in value.split(",") if _ADDRESS.match(value) and name not in skipped else []:
                target = services[urlsplit(address).hostname]["spec"]
                pooled = name in POOLS.get(service, ())
                assert (target.get("clusterIP") == "None") == pooled, f"{service} {name}={address}: {target}"


# ---- compose ------------------------------------------------------------------------------------------------


def manifest_facts() -> dict[str, dict]:
    docs = render(MANIFESTS / "overlays" / "local")
    facts = {}
    for service in SERVICES:
        (container,) = pod_spec(of_kind(docs, "Deployment")[LOCAL_PREFIX + service])["containers"]
        facts[service] = {
            "image": container["image"],
            "port": container["ports"][0]["containerPort"],
            "probe_paths": {
                container["livenessProbe"]["httpGet"]["path"],
                container["readinessProbe"]["httpGet"]["path"],
            },
        }
    return facts


def compose_port(service: dict) -> int | None:
    env = compose_environment(service)
    return int(env["PORT"]) if env.get("PORT") else None


def test_compose_sets_every_required_setting():
    services = compose()["services"]
    for name in SERVICES:
        assert name in services, f"docker-compose.yml has no service {name} (Compose names are folder names)"
        env = compose_environment(services[name])
        missing = {var for var in required_in_deployment(SETTINGS[name]) if not env.get(var)}
        assert not missing, f"compose service {name}: required settings not set: {sorted(missing)}"
        loopback = {k: v for k, v in env.items() if LOOPBACK.search(v)}
        assert not loopback, f"compose service {name}: loopback addresses in a container: {loopback}"


def test_compose_skaffold_and_the_manifests_agree_on_images_ports_and_probes():
    services = compose()["services"]
    facts = manifest_facts()
    artifacts = {a["image"]: a for a in skaffold_modules()["titanium"]["build"]["artifacts"]}
    for name, fact in facts.items():
        service = services[name]
        assert service["image"].split(":")[0] == fact["image"], f"{name}: compose image {service['image']}"
        assert fact["image"] in artifacts, f"{name}: skaffold builds no {fact['image']}"
        build = service["build"]
        args = build.get("args") or {}
        if isinstance(args, list):
            args = dict(a.split("=", 1) for a in args)
        artifact = artifacts[fact["image"]]
        assert args.get("SERVICE") == artifact["docker"]["buildArgs"]["SERVICE"] == name
        assert build.get("dockerfile", "Dockerfile") == artifact["docker"]["dockerfile"]
        assert (compose_port(service) or SETTINGS[name].model_fields["port"].default) == fact["port"]
        for mapping in service.get("ports", []):
            target = mapping["target"] if isinstance(mapping, dict) else int(str(mapping).rsplit(":", 1)[-1])
            assert int(target) == fact["port"], (
                f"{name}: compose publishes {mapping}, the pod listens on {fact['port']}"
            )
        check = " ".join(map(str, service["healthcheck"]["test"])) if "healthcheck" in service else ""
        paths = set(re.findall(r"(?:^|[\s:0-9])(/[a-z]+)\b", check))
        assert paths and paths <= fact["probe_paths"], f"{name}: compose healthcheck {check!r} vs {fact['probe_paths']}"


def test_compose_addresses_name_compose_services_on_their_ports():
    services = compose()["services"]
    ports = {name: compose_port(services[name]) or SETTINGS[name].model_fields["port"].default for name in SERVICES}
    for name in SERVICES:
        for var, value in compose_environment(services[name]).items():
            for address in value.split(",") if _ADDRESS.match(value) else []:
                url = urlsplit(address)
                assert url.hostname in services, f"compose {name} {var}={address}: no service {url.hostname}"
                if url.hostname in ports:
                    assert url.port == ports[url.hostname], (
                        f"compose {name} {var}: {url.hostname} is on {ports[url.hostname]}"
                    )


# ---- the request graph and the network policies --------------------------------------------------------------

# dashboard-ui's addresses are links it hands to the browser (each service's /docs), not calls it makes, except
# where it sends its spans (every service does).
LINKS_ONLY = {"dashboard-ui"}
CALLED_BY_EVERY_SERVICE = {"OTEL_EXPORTER_OTLP_ENDPOINT"}
# Addresses a service is given to refuse, not to call: edge-config never takes one of the suite's own for a device.
REFUSED_ADDRESSES = {"SUITE_URLS"}
# Addresses outside the suite (the monitoring stack's Alertmanager, in its own namespace): no Service of ours.
OUTSIDE_ADDRESSES = {"ALERTMANAGER_URL"}


def request_graph(docs) -> set[tuple[str, str, int]]:
    """(caller, callee, port) for every address a rendered workload is given: what the code will call."""
    services = of_kind(docs, "Service")
    prefix = prefix_of(docs)
    edges = set()
    for workload in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "CronJob").values()]:
        caller = unprefixed(workload["metadata"]["labels"]["app"], prefix)
        for container in pod_spec(workload)["containers"]:
            env = container_env(docs, workload, container)
            if caller in LINKS_ONLY:
                env = {k: v for k, v in env.items() if k in CALLED_BY_EVERY_SERVICE}
            calls = [v for k, v in env.items() if k not in REFUSED_ADDRESSES | OUTSIDE_ADDRESSES and _ADDRESS.match(v)]
            addresses = [a for v in calls for a in v.split(",")]
            if "PGHOST" in env:
                addresses.append(f"postgresql://{env['PGHOST']}:{env['PGPORT']}")
            for address in addresses:
                url = urlsplit(address)
                callee = unprefixed(services[url.hostname]["spec"]["selector"]["app"], prefix)
                edges.add((caller, callee, url.port))
    return edges


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        present = labels.get(expression["key"])
        if expression["operator"] == "In" and present not in expression["values"]:
            return False
        if expression["operator"] == "NotIn" and present in expression["values"]:
            return False
    return True


def peer_admits(rule: dict, side: str, labels: dict[str, str], port: int) -> bool:
    """Whether one ingress/egress rule lets a pod with `labels` (same namespace) through on TCP `port`."""
    ports = rule.get("ports")
    if ports and not any(p["port"] <= port <= p.get("endPort", p["port"]) for p in ports):
        return False
    peers = rule.get(side)
    if peers is None:
        return True
    # ipBlock peers are addresses outside the cluster's pods (devices, the API server); other namespaces' pods
    # (DNS, Prometheus) are no workload of this tree.
    return any(
        "podSelector" in peer and "namespaceSelector" not in peer and selects(peer["podSelector"], labels)
        for peer in peers
    )


def admits(policies: list[dict], direction: str, subject: dict[str, str], other: dict[str, str], port: int) -> bool:
    """Whether the policies selecting `subject` let its `direction` traffic with `other` through on `port`."""
    side = "to" if direction == "Egress" else "from"
    applying = [
        p for p in policies if direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], subject)
    ]
    rules = [rule for p in applying for rule in p["spec"].get(direction.lower(), [])]
    return not applying or any(peer_admits(rule, side, other, port) for rule in rules)


def allowed(policies: list[dict], source: dict[str, str], target: dict[str, str], port: int) -> bool:
    return admits(policies, "Egress", source, target, port) and admits(policies, "Ingress", target, source, port)


def test_network_policies_allow_exactly_the_request_graph():
    docs = render(MANIFESTS / "tests" / "all-components")
    policies = list(of_kind(docs, "NetworkPolicy").values())
    graph = request_graph(docs)
    assert ("load-balancer", "api-gateway", 8000) in graph and ("blog-service", "auth-service", 8001) in graph
    assert ("postgres-backup", "postgres", 5432) in graph
    pods = {}
    for workload in [*of_kind(docs, "Deployment").values(), *of_kind(docs, "StatefulSet").values()]:
        pods[unprefixed(workload["metadata"]["labels"]["app"])] = workload["spec"]["template"]["metadata"]["labels"]
    (cron,) = of_kind(docs, "CronJob").values()
    pods["postgres-backup"] = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    ports = container_ports(docs)
    blocked = [edge for edge in graph if not allowed(policies, pods[edge[0]], pods[edge[1]], edge[2])]
    assert not blocked, f"network policies block edges of the request graph: {sorted(blocked)}"
    extra = [
        (source, target, port)
        for source in pods
        for target, port in ports.items()
        if source != target
        and (source, target, port) not in graph
        and allowed(policies, pods[source], pods[target], port)
    ]
    assert not extra, f"network policies allow calls the code never makes: {sorted(extra)}"
    # The entry point takes traffic from outside; nothing else does.
    outsider = {"app": "somebody-else"}
    open_to_all = {t for t, port in ports.items() if admits(policies, "Ingress", pods[t], outsider, port)}
    assert open_to_all == {"load-balancer"}
