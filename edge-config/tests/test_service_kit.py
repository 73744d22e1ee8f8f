from edge_config.main import create_app
from edge_config.settings import EdgeConfigSettings


def test_port_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "18123")
    assert EdgeConfigSettings().port == 18123


async def test_answers_health_ready_stats_metrics(check_kit_endpoints):
    stats = await check_kit_endpoints(create_app(EdgeConfigSettings(env="test")))
    assert stats["service"] == "edge-config"
