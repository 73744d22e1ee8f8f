from pathlib import Path

from pydantic import Field

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
    static_dir: Path = Field(
        default=STATIC_DIR,
        description="The page's files.",
        json_schema_extra={"shown_default": "the package's `static/`"},
    )
    chartjs_dir: Path = Field(
        default=CHARTJS_DIR,
        description="Chart.js, served with the page (never from a CDN).",
        json_schema_extra={"shown_default": "the package's Chart.js (`npm ci` installs it in a checkout)"},
    )
    poll_interval_s: float = Field(
        default=2.0, description="How often the page reads `/stats` when its event stream is not available."
    )

    def api_docs(self) -> dict[str, str]:
        """Each service's page of the suite's API docs (/api/docs through the load balancer, that service chosen)."""
        return {name: f"/api/docs?urls.primaryName={name}" for name in DOCUMENTED_SERVICES}
