"""The Dockerfile and what it installs: lint-clean, buildable by any engine's own Dockerfile frontend, and the
installed (non-editable) packages find every file they need at run time."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deploy import REPO_ROOT, workspace_members

DOCKERFILE = REPO_ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).with_name("hadolint")
UV = next(p for p in (Path(sys.executable).with_name("uv"), REPO_ROOT / ".tools" / "bin" / "uv") if p.exists())


def test_hadolint_passes():
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dependency_step_copies_every_members_pyproject_and_nothing_else():
    text = DOCKERFILE.read_text()
    copied = re.findall(r"^COPY (\S+)/pyproject\.toml \1/$", text, re.MULTILINE)
    assert sorted(copied) == sorted(workspace_members())
    dependencies = text.index("--no-install-workspace")
    assert text.index("COPY . .") > dependencies, "the sources must come after the dependency layer"


def test_only_what_every_builder_builds_without_pulling_a_frontend():
    """BuildKit and the classic builder alike, offline: no RUN --mount (classic builder), no heredocs (Dockerfile
    1.4), no `# syntax=` line (it pulls a frontend image)."""
    instructions = "\n".join(line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert "--mount" not in instructions
    assert "<<" not in instructions, "no heredocs"
    assert "# syntax=" not in DOCKERFILE.read_text()


def test_the_runtime_stage_runs_as_a_fixed_non_root_user_with_a_healthcheck():
    runtime = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    assert "USER 10001:10001" in runtime
    assert re.search(r'HEALTHCHECK .*\n\s+CMD \["python", "-m", "titanium_common.healthcheck"\]', runtime)
    assert "STOPSIGNAL SIGTERM" in runtime
    assert re.search(r'^CMD \[".+"\]$', runtime, re.MULTILINE), "exec-form start command"
    assert "uv" not in re.findall(r"COPY --from=(\S+)", runtime)
    assert re.findall(r"COPY --from=(\S+)", runtime) == ["builder"]


@pytest.mark.parametrize("service", workspace_members(with_script=True))
def test_no_image_installs_the_development_launcher(service):
    """What `uv sync --package <service>` in the Dockerfile installs: the service and the kit, never `titanium-dev`."""
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-dev", "--no-hashes", "--package", service],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {line.split("==")[0].strip() for line in exported.splitlines() if line and line[0] not in " #"}
    assert {"-e ./common", f"-e ./{service}"} <= installed
    assert "-e ./dev" not in installed
    assert "dev/titanium_dev" in (REPO_ROOT / ".dockerignore").read_text().splitlines(), "not in the build context"


@pytest.mark.parametrize(
    "kept_out", [".venv", ".data", ".env", "**/node_modules", "**/tests", "**/__pycache__", ".git"]
)
def test_dockerignore_keeps_out_local_state(kept_out):
    assert kept_out in (REPO_ROOT / ".dockerignore").read_text().splitlines()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Every workspace package installed as a wheel (as in the image) into a fresh environment."""
    venv = tmp_path_factory.mktemp("non-editable") / "venv"
    subprocess.run(
        [str(UV), "sync", "--frozen", "--no-dev", "--no-editable", "--all-packages", "--quiet"],
        cwd=REPO_ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
    )
    return venv / "bin" / "python"


PROBE = """
import json, pathlib
import blog_service.main, dashboard_ui.settings, edge_config.main, user_service.main
settings = dashboard_ui.settings.DashboardSettings()
def files(path):
    path = pathlib.Path(path)
    return {"path": str(path), "files": sorted(p.name for p in path.iterdir()) if path.is_dir() else []}
print(json.dumps({
    "dashboard_static": files(settings.static_dir),
    "chartjs": files(settings.chartjs_dir),
    "blog_static": files(pathlib.Path(blog_service.main.__file__).parent / "static"),
    "user_migrations": files(user_service.main.MIGRATIONS / "versions"),
    "edge_migrations": files(edge_config.main.MIGRATIONS / "versions"),
    "blog_migrations": files(pathlib.Path(blog_service.main.__file__).parent / "migrations" / "versions"),
}))
"""


def test_installed_packages_find_their_static_files_and_migrations(installed):
    found = json.loads(
        subprocess.run([str(installed), "-c", PROBE], capture_output=True, text=True, check=True, cwd="/").stdout
    )
    for what, entry in found.items():
        assert "site-packages" in entry["path"], f"{what} is read from {entry['path']}, not the installed package"
    assert {"index.html", "app.js", "stats-stream.js", "styles.css"} <= set(found["dashboard_static"]["files"])
    assert found["chartjs"]["files"] == ["chart.umd.js"]
    assert {"index.html", "app.js", "style.css"} <= set(found["blog_static"]["files"])
    for what in ("user_migrations", "edge_migrations", "blog_migrations"):
        assert any(name.endswith(".py") and name[0].isdigit() for name in found[what]["files"]), what
