from auth_service.main import create_app
from auth_service.settings import AuthSettings


def test_port_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "18123")
    assert AuthSettings().port == 18123


async def test_answers_health_ready_stats_metrics(check_kit_endpoints, tmp_path):
    stats = await check_kit_endpoints(create_app(AuthSettings(env="test", jwt_secret="k" * 32, data_dir=tmp_path)))
    assert stats["service"] == "auth-service"
