"""An installed (non-editable) dashboard-ui carries its page and Chart.js inside the package, where settings.py
looks first; an editable install serves them from this folder (`static/`, `node_modules/`)."""

from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# The one Chart.js file the page loads (the rest of the npm package is source maps, other module formats, types).
CHARTJS = Path("node_modules") / "chart.js" / "dist" / "chart.umd.js"


class PackageDataHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        if not (root / CHARTJS).is_file():
            raise FileNotFoundError(f"{root / CHARTJS} is missing: run `npm ci` in dashboard-ui/ first")
        build_data["force_include"][str(root / "static")] = "dashboard_ui/static"
        build_data["force_include"][str(root / CHARTJS)] = f"dashboard_ui/vendor/chart.js/{CHARTJS.name}"
