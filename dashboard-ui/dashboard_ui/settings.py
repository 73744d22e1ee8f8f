from pathlib import Path

from titanium_common.addresses import DEFAULT_PORTS
from titanium_common.api_docs import DOCUMENTED_SERVICES
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
    port: int = DEFAULT_PORTS["dashboard-ui"]
    static_dir: Path = STATIC_DIR
    chartjs_dir: Path = CHARTJS_DIR
    poll_interval_s: float = 2.0

    def api_docs(self) -> dict[str, str]:
        """Each service's page of the suite's API docs (/api/docs through the load balancer, that service chosen)."""
        return {name: f"/api/docs?urls.primaryName={name}" for name in DOCUMENTED_SERVICES}
