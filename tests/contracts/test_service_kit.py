"""Every service takes its port from PORT and answers the kit's endpoints (/health, /ready, /stats, /metrics) the
way the load balancer and Prometheus read them. A service without an entry in SETTINGS fails here."""

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.kit import check_kit_endpoints
from titanium_common.addresses import DEFAULT_PORTS


def _chartjs(tmp_path: Path) -> Path:
    """A stand-in for Chart.js, which the page needs to start (the dashboard's own tests serve the real one)."""
    (tmp_path / "chart.umd.js").write_text("")
    return tmp_path


# Each service's package, settings class, and what a test instance of it sets (given the test's tmp_path): no
# background rounds, no cluster, its files in the test's own folder.
SETTINGS: dict[str, tuple[str, str, Callable[[Path], dict[str, Any]]]] = {
    "load-balancer": ("load_balancer", "LoadBalancerSettings", lambda tmp: {}),
    "api-gateway": ("api_gateway", "GatewaySettings", lambda tmp: {}),
    "auth-service": ("auth_service", "AuthSettings", lambda tmp: {"jwt_secret": "k" * 32, "data_dir": tmp}),
    "user-service": ("user_service", "UserSettings", lambda tmp: {"data_dir": tmp}),
    "blog-service": ("blog_service", "BlogSettings", lambda tmp: {"data_dir": tmp}),
    "cluster-monitor": ("cluster_monitor", "ClusterMonitorSettings", lambda tmp: {}),
    "edge-config": (
        "edge_config",
        "EdgeConfigSettings",
        lambda tmp: {"data_dir": tmp, "kube_mode": "off", "health_interval_s": 3600},
    ),
    "ops-mcp": ("ops_mcp", "OpsSettings", lambda tmp: {"sample_interval_s": 3600}),
    "dashboard-ui": ("dashboard_ui", "DashboardSettings", lambda tmp: {"chartjs_dir": _chartjs(tmp)}),
}


def _settings_class(service: str) -> type:
    assert service in SETTINGS, f"{service} has no entry in SETTINGS of {__file__}"
    package, name, _ = SETTINGS[service]
    return getattr(importlib.import_module(f"{package}.settings"), name)


@pytest.mark.parametrize("service", sorted(DEFAULT_PORTS))
def test_port_comes_from_the_environment(service, monkeypatch):
    monkeypatch.setenv("PORT", "18123")
    assert _settings_class(service)().port == 18123


@pytest.mark.parametrize("service", sorted(DEFAULT_PORTS))
async def test_answers_health_ready_stats_metrics(service, tmp_path):
    settings_class = _settings_class(service)
    package, _, overrides = SETTINGS[service]
    app = importlib.import_module(f"{package}.main").create_app(settings_class(env="test", **overrides(tmp_path)))
    await check_kit_endpoints(app, service)
