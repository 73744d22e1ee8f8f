"""One source of truth: the settings classes in the code decide what Compose and the manifests must set, and the
three deployment descriptions (docker-compose.yml, skaffold.yaml, k8s-manifests) agree on images, ports, probe
paths and who talks to whom."""

import re
from urllib.parse import urlsplit

import pytest

from tests.support.deploy import (
    DATABASE_SERVICES,
    LOCAL_PREFIX,
    LOOPBACK,
    MANIFESTS,
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
from titanium_common.db import DatabaseSettings
from titanium_common.settings import SERVICE_URL_SETTINGS

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
POOLS = {
    "load-balancer": {"GATEWAY_URLS", "DASHBOARD_URLS"} | {field.upper() for field in SERVICE_URL_SETTINGS.values()},
    "api-gateway": {name.upper() for name in SETTINGS["api-gateway"].model_fields if name.endswith("_url")},
}


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
