from blog_service.main import create_app
from blog_service.settings import BlogSettings


def test_port_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "18123")
    assert BlogSettings().port == 18123


async def test_answers_health_ready_stats_metrics(check_kit_endpoints):
    stats = await check_kit_endpoints(create_app(BlogSettings(env="test")))
    assert stats["service"] == "blog-service"
