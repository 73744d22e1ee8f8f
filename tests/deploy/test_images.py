"""Every image built from the Dockerfile in the Docker Engine (Compose's BuildKit build, tests/support/images.py):
slim, its fixed non-root user, its own health check and SIGTERM as stop signal, nothing of the build or the tests
inside, and a source change rebuilds only the workspace layer. The images running together, as Compose runs them,
are tests/deploy/test_compose_engine.py. Figures (sizes, build times) go to test-output/images.json."""

import json
import re
import shutil
import subprocess
import uuid

import pytest
import yaml

from tests.support.databases import RUN_ID
from tests.support.deploy import REPO_ROOT, workspace_members
from tests.support.images import build_suite_images, image_size

pytestmark = pytest.mark.timeout(1800)

SERVICES = workspace_members(with_script=True)
RUNTIME_SIZE_LIMIT = 250 * 1000 * 1000
NON_ROOT = "10001:10001"
REPORT = REPO_ROOT / "test-output" / "images.json"


@pytest.fixture(scope="module")
def built(docker_engine, stand_ins):
    """Every image (the build cache makes a second build of unchanged inputs quick); the seconds it took."""
    return build_suite_images(docker_engine, SERVICES)


def image_config(engine, service: str) -> dict:
    return json.loads(engine.docker("image", "inspect", f"titanium/{service}").stdout)[0]["Config"]


def run_python(engine, service: str, code: str) -> str:
    """Python in a throw-away container of the image, with no network."""
    done = engine.docker("run", "--rm", "--network", "none", f"titanium/{service}", "python", "-c", code)
    return done.stdout


def test_every_runtime_image_is_slim_and_reports_its_figures(docker_engine, built, stand_ins):
    sizes = {service: image_size(docker_engine, f"titanium/{service}") for service in SERVICES}
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "stand_ins_made_s": {kind: round(s) for kind, s in stand_ins.items()},
                "build_s": round(built, 1),
                "size_mb": {service: round(size / 1e6, 1) for service, size in sizes.items()},
            },
            indent=2,
        )
    )
    for service, size in sizes.items():
        assert size <= RUNTIME_SIZE_LIMIT, f"{service}: {size / 1e6:.0f} MB"


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_runs_its_service_as_the_fixed_non_root_user_with_its_own_health_check(
    docker_engine, built, service
):
    config = image_config(docker_engine, service)
    assert config["User"] == NON_ROOT
    assert config["StopSignal"] == "SIGTERM"
    assert config["Cmd"] == ["titanium-service"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "titanium_common.healthcheck"]
    assert f"SERVICE={service}" in config["Env"]


def test_the_image_holds_no_uv_no_sources_no_launcher_and_no_tests(docker_engine, built):
    probe = (
        "import importlib.util, shutil, pathlib, user_service;"
        "package = pathlib.Path(user_service.__file__).parent;"
        "print(shutil.which('uv'), pathlib.Path('/src').exists(), package, importlib.util.find_spec('titanium_dev'),"
        " 'tests' in [p.name for p in package.iterdir()])"
    )
    uv, sources, package, launcher, tests = run_python(docker_engine, "user-service", probe).split()
    assert (uv, sources, launcher) == ("None", "False", "None"), "no uv, no sources, no development launcher"
    assert package.startswith("/opt/venv/lib/") and "site-packages" in package
    assert tests == "False"


def test_a_source_change_rebuilds_only_the_workspace_layer(docker_engine, built, tmp_path):
    """A copy of the build context with one line of source changed: the dependency layer comes from the cache."""
    context = tmp_path / "context"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for relative in files:
        if (REPO_ROOT / relative).is_file():
            (context / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / relative, context / relative)
    changed = context / "user-service" / "user_service" / "__init__.py"
    # A line no earlier run added, so that no cached layer of a previous run matches.
    changed.write_text(changed.read_text() + f"\n# a one-line change {uuid.uuid4().hex}\n")
    image = f"titanium/user-service-changed-{RUN_ID}"
    compose_file = tmp_path / "compose.yml"
    service = {"build": {"context": str(context), "args": {"SERVICE": "user-service"}}, "image": image}
    compose_file.write_text(yaml.safe_dump({"services": {"changed": service}}))
    done = docker_engine.docker(
        "compose", "--progress", "plain", "-f", str(compose_file), "--project-name", f"changed-{RUN_ID}", "build",
        timeout=900,
    )  # fmt: skip
    try:
        log = done.stdout + done.stderr
        # BuildKit's plain progress: "#12 [builder 8/9] RUN test -n ... --no-install-workspace ..." then
        # "#12 CACHED" when the layer came from the cache.
        steps = {m.group(1): m.group(2) for m in re.finditer(r"^#(\d+) \[[^\]]*\] (RUN .*)$", log, re.MULTILINE)}
        cached = set(re.findall(r"^#(\d+) CACHED$", log, re.MULTILINE))
        dependencies = next(n for n, step in steps.items() if "--no-install-workspace" in step)
        workspace = next(n for n, step in steps.items() if "ln -s" in step)
        assert dependencies in cached, log[-4000:]
        assert workspace not in cached, log[-4000:]
    finally:
        docker_engine.docker("image", "rm", image, check=False)
