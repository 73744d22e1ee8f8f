"""The catalogue: what each list of services derived from it holds, and the mistakes it refuses."""

import pytest

from titanium_common.addresses import DEFAULT_PORTS, local_url, service_addresses
from titanium_common.catalog import CATALOGUE, Catalogue, Service

TOY = Service("toy-service", "toy_service", 8099, "TOY_SERVICE_URL", prefixes=("/api/toy",),
              pooled_by=("load-balancer", "api-gateway"), after=("auth-service",))  # fmt: skip


def test_the_suite_in_its_listing_order():
    assert CATALOGUE.names() == (
        "load-balancer",
        "api-gateway",
        "auth-service",
        "user-service",
        "blog-service",
        "cluster-monitor",
        "edge-config",
        "ops-mcp",
        "dashboard-ui",
    )
    assert {s.name: s.port for s in CATALOGUE} == DEFAULT_PORTS
    assert local_url("ops-mcp") == "http://127.0.0.1:8006"


def test_every_service_starts_after_what_it_needs():
    order = [s.name for s in CATALOGUE.start_order()]
    assert sorted(order) == sorted(CATALOGUE.names())
    for service in CATALOGUE:
        assert all(order.index(before) < order.index(service.name) for before in service.after), service.name
    assert order[-2:] == ["api-gateway", "load-balancer"]


def test_the_gateway_pools_every_service_it_routes_to():
    routed = set(CATALOGUE.routes().values())
    assert routed == {s.name for s in CATALOGUE.pooled_by("api-gateway")}
    assert "ops-mcp" in routed
    assert CATALOGUE.routes()["/ws"] == "cluster-monitor"
    # It starts once every service it routes to is ready.
    assert routed <= set(CATALOGUE.get("api-gateway").after)


def test_stats_probes_everything_but_the_balancer_and_it_holds_a_pool_over_each():
    probed = {s.name for s in CATALOGUE.probed()}
    assert probed == set(CATALOGUE.names()) - {"load-balancer"}
    assert probed == {s.name for s in CATALOGUE.pooled_by("load-balancer")}


def test_ops_mcp_reads_every_other_service():
    assert {s.name for s in CATALOGUE.pooled_by("ops-mcp")} == set(CATALOGUE.names()) - {"ops-mcp"}
    assert CATALOGUE.get("ops-mcp").module == "ops_mcp"
    assert CATALOGUE.get("user-service").module == "user_service"


def test_with_service_adds_an_entry_everywhere_and_leaves_the_catalogue_alone():
    catalogue = CATALOGUE.with_service(TOY, before="dashboard-ui")
    assert catalogue.names()[-2:] == ("toy-service", "dashboard-ui")
    assert catalogue.routes()["/api/toy"] == "toy-service"
    assert TOY in catalogue.pooled_by("api-gateway") and TOY in catalogue.probed()
    order = [s.name for s in catalogue.start_order()]
    assert order.index("auth-service") < order.index("toy-service")
    assert "toy-service" not in CATALOGUE.names()


def test_generated_address_settings_read_their_variables(monkeypatch):
    catalogue = CATALOGUE.with_service(TOY)
    addresses = service_addresses("api-gateway", catalogue)
    assert addresses().toy_service_url == "http://127.0.0.1:8099"
    monkeypatch.setenv("TOY_SERVICE_URL", "http://toy-a:8099/, http://toy-b:8099")
    monkeypatch.setenv("OPS_MCP_URL", "http://ops:8006")
    replicas = addresses().service_replicas()
    assert replicas["toy-service"] == ["http://toy-a:8099", "http://toy-b:8099"]
    assert replicas["ops-mcp"] == ["http://ops:8006"]
    assert set(replicas) == {s.name for s in catalogue.pooled_by("api-gateway")}


@pytest.mark.parametrize(
    ("services", "problem"),
    [
        ((TOY, TOY), "listed twice"),
        ((Service("a", "a", 1, "A_URL", after=("nobody",)),), "unknown services"),
        ((Service("a", "a", 1, "A_URL", after=("b",)), Service("b", "b", 2, "B_URL", after=("a",))), "wait for"),
    ],
)
def test_a_broken_catalogue_is_refused(services, problem):
    with pytest.raises(ValueError, match=problem):
        Catalogue(services)
