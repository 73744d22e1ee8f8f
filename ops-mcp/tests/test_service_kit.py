from ops_mcp.main import create_app
from ops_mcp.settings import OpsSettings


def test_port_and_addresses_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "18126")
    monkeypatch.setenv("GATEWAY_URLS", "http://gw-a:8000, http://gw-b:8000")
    settings = OpsSettings()
    assert settings.port == 18126
    assert settings.service_urls()["api-gateway"] == "http://gw-a:8000"


async def test_answers_health_ready_stats_metrics(check_kit_endpoints):
    stats = await check_kit_endpoints(create_app(OpsSettings(env="test", sample_interval_s=3600)))
    assert stats["service"] == "ops-mcp"
