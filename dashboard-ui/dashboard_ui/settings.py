from pathlib import Path

from titanium_common.settings import ServiceSettings

SITE_ROOT = Path(__file__).resolve().parents[1]


class DashboardSettings(ServiceSettings):
    service_name: str = "dashboard-ui"
    port: int = 8080
    # The page itself (what nginx serves in containers) and Chart.js as installed by `npm ci`.
    static_dir: Path = SITE_ROOT / "static"
    chartjs_dir: Path = SITE_ROOT / "node_modules" / "chart.js" / "dist"
    poll_interval_s: float = 2.0
    # Where each service's OpenAPI page is, for the dashboard's links; the launcher sets these for every service.
    auth_service_url: str = "http://127.0.0.1:8001"
    user_service_url: str = "http://127.0.0.1:8002"
    blog_service_url: str = "http://127.0.0.1:8003"
    cluster_monitor_url: str = "http://127.0.0.1:8004"
    edge_config_url: str = "http://127.0.0.1:8005"

    def api_docs(self) -> dict[str, str]:
        return {
            "auth-service": f"{self.auth_service_url}/docs",
            "user-service": f"{self.user_service_url}/docs",
            "blog-service": f"{self.blog_service_url}/docs",
            "cluster-monitor": f"{self.cluster_monitor_url}/docs",
            "edge-config": f"{self.edge_config_url}/docs",
        }
