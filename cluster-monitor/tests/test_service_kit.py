from cluster_monitor.main import create_app
from cluster_monitor.settings import ClusterMonitorSettings


def test_port_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "18123")
    assert ClusterMonitorSettings().port == 18123


async def test_answers_health_ready_stats_metrics(check_kit_endpoints):
    stats = await check_kit_endpoints(create_app(ClusterMonitorSettings(env="test")))
    assert stats["service"] == "cluster-monitor"
