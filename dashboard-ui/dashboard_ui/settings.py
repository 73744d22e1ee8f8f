from pathlib import Path

from titanium_common.settings import ServiceSettings

PACKAGE_DIR = Path(__file__).resolve().parent
# An installed wheel carries the page and Chart.js inside the package (hatch_build.py); a source checkout (editable
# install) has them beside it, Chart.js as `npm ci` installs it.
if (PACKAGE_DIR / "static").is_dir():
    STATIC_DIR, CHARTJS_DIR = PACKAGE_DIR / "static", PACKAGE_DIR / "vendor" / "chart.js"
else:
    STATIC_DIR, CHARTJS_DIR = PACKAGE_DIR.parent / "static", PACKAGE_DIR.parent / "node_modules" / "chart.js" / "dist"


class DashboardSettings(ServiceSettings):
    service_name: str = "dashboard-ui"
    port: int = 8080
    static_dir: Path = STATIC_DIR
    chartjs_dir: Path = CHARTJS_DIR
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
