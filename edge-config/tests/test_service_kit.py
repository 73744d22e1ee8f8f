from edge_config.main import create_app
from edge_config.settings import EdgeConfigSettings


def test_port_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "18123")
    assert EdgeConfigSettings().port == 18123


async def test_answers_health_ready_stats_metrics(check_kit_endpoints, edge_settings):
    stats = await check_kit_endpoints(create_app(edge_settings))
    assert stats["service"] == "edge-config"
    assert stats["db"]["status"] == "ok"
    assert stats["devices"] == {"total": 0, "by_status": {"healthy": 0, "unhealthy": 0, "unreachable": 0, "unknown": 0}}
    assert stats["kubernetes"]["configured"] is False
