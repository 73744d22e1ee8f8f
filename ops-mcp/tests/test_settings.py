from ops_mcp.settings import OpsSettings


def test_the_gateway_is_reached_at_the_first_of_its_replicas(monkeypatch):
    monkeypatch.setenv("GATEWAY_URLS", "http://gw-a:8000, http://gw-b:8000")
    assert OpsSettings().service_urls()["api-gateway"] == "http://gw-a:8000"
