"""Every image built from the Dockerfile (buildah, tests/support/images.py) and started with the environment the
compose file gives it: each comes up as its non-root user and answers /health and /ready, the image's own
health check passes, and a user registered through the containerised load balancer → gateway → user-service →
PostgreSQL can log in. SIGTERM stops each one cleanly.

The containers share the host's network (the only way to start one here), so the compose host names are mapped to
loopback ports: each service gets a free port, PostgreSQL and Redis are the machine's own (a database of this
run's own, dropped afterwards; Redis keys under this run's prefix, deleted afterwards). Figures (sizes, build and
start times) go to test-output/images.json."""

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import asyncpg
import pytest
import redis

from tests.support import images
from tests.support.databases import POSTGRES_DSN, REDIS_URL, RUN_ID, postgres_admin
from tests.support.deploy import ENV_EXAMPLE, REPO_ROOT, compose_model, workspace_members
from tests.support.servers import free_port

pytestmark = pytest.mark.timeout(1800)

INFRASTRUCTURE = {"postgres": "127.0.0.1:5432", "redis": "127.0.0.1:6379"}
READY_TIMEOUT_S = 120.0
RUNTIME_SIZE_LIMIT = 250 * 1000 * 1000
NON_ROOT_UID = 10001
REPORT = REPO_ROOT / "test-output" / "images.json"


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw.decode(errors="replace")


@pytest.fixture(scope="module")
def built():
    """Stand-in bases (once per machine) and every image (layer cache), with the figures for the report."""
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        pytest.fail("buildah and debootstrap are needed (make test installs them)")
    bases = images.ensure_base_images()
    builds = {build.service: build for build in map(images.build_image, workspace_members(with_script=True))}
    return bases, builds


@pytest.fixture(scope="module")
def database():
    name = f"titanium_images_{RUN_ID}"
    postgres_admin(f'CREATE DATABASE "{name}"')
    yield name
    postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def redis_prefix():
    prefix = f"test:{RUN_ID}:images:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


def container_environment(model: dict, ports: dict[str, int], redis_prefix: str) -> dict[str, dict[str, str]]:
    """Each suite service's compose environment with `http://name:port`, `@postgres:5432`, `redis:6379` pointed
    at loopback, its own free PORT and this run's Redis prefix."""
    hosts = dict(INFRASTRUCTURE) | {name: f"127.0.0.1:{port}" for name, port in ports.items()}

    def loopback(value: str) -> str:
        return re.sub(
            r"(//|@)([a-z0-9-]+):(\d+)",
            lambda m: m.group(1) + hosts.get(m.group(2), m.group(0)[len(m.group(1)) :]),
            value,
        )

    environments = {}
    for name in ports:
        env = {key: loopback(str(value)) for key, value in model["services"][name]["environment"].items()}
        env["PORT"] = str(ports[name])
        if "REDIS_PREFIX" in env:
            env["REDIS_PREFIX"] = f"{redis_prefix}{name}:"
        environments[name] = env
    return environments


def start_order(model: dict, names: list[str]) -> list[list[str]]:
    """Waves of services whose dependencies (among `names`) have started, as `depends_on` orders them."""
    waves, started = [], set()
    while len(started) < len(names):
        wave = [
            n
            for n in names
            if n not in started and set(model["services"][n].get("depends_on", {})) - set(INFRASTRUCTURE) <= started
        ]
        waves.append(wave)
        started |= set(wave)
    return waves


def wait_ready(container: images.Container) -> float:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if container.process.poll() is not None:
            raise AssertionError(f"{container.name} exited with {container.process.returncode}:\n{container.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{container.port}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - container.started_at
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{container.name} not ready in {READY_TIMEOUT_S:.0f} s:\n{container.log()}")


@pytest.fixture(scope="module")
def suite(built, database, redis_prefix, tmp_path_factory):
    env_file = tmp_path_factory.mktemp("compose") / "env"
    env_file.write_text(ENV_EXAMPLE.read_text() + f"POSTGRES_USER=postgres\nPOSTGRES_DB={database}\n")
    model = compose_model(env_file)
    names = [name for name in model["services"] if name not in INFRASTRUCTURE]
    ports = {name: free_port() for name in names}
    environments = container_environment(model, ports, redis_prefix)
    logs = tmp_path_factory.mktemp("logs")
    containers: dict[str, images.Container] = {}
    ready_s: dict[str, float] = {}
    try:
        for wave in start_order(model, names):
            for name in wave:
                image = model["services"][name]["image"]
                container = images.Container(
                    f"titanium-test-{RUN_ID}-{name}", image, environments[name], ports[name], logs / f"{name}.log"
                )
                container.start()
                containers[name] = container
            for name in wave:
                ready_s[name] = wait_ready(containers[name])
        yield {"model": model, "containers": containers, "ready_s": ready_s, "database": database}
    finally:
        for container in containers.values():
            container.stop(timeout=5)


def test_every_runtime_image_is_slim_and_reports_its_figures(built, suite):
    bases, builds = built
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "stand_in_bases_s": bases,
                "images": {
                    name: {
                        "build_s": round(b.seconds, 1),
                        "size_mb": round(b.size_bytes / 1e6, 1),
                        "steps_cached": b.steps_cached,
                    }
                    for name, b in builds.items()
                },
                "start_to_ready_s": {name: round(s, 2) for name, s in suite["ready_s"].items()},
            },
            indent=2,
        )
    )
    for name, build in builds.items():
        assert build.size_bytes <= RUNTIME_SIZE_LIMIT, f"{name}: {build.size_bytes / 1e6:.0f} MB"


def test_each_container_runs_as_the_fixed_non_root_user(suite):
    for name, container in suite["containers"].items():
        assert container.docker_config["User"] == f"{NON_ROOT_UID}:{NON_ROOT_UID}", name
        assert container.docker_config["StopSignal"] == "SIGTERM", name
        owner = images.listening_socket_owner(container.port)
        assert owner is not None, f"{name} listens on nothing"
        assert owner[0] == NON_ROOT_UID, f"{name} listens as uid {owner[0]}"


def test_each_container_answers_health_and_ready(suite):
    for name, container in suite["containers"].items():
        for path in ("/health", "/ready"):
            status, _ = http("GET", f"http://127.0.0.1:{container.port}{path}")
            assert status == 200, f"{name} {path}: {status}"


def test_the_image_healthcheck_and_the_compose_healthcheck_pass_inside_each_container(suite):
    for name, container in suite["containers"].items():
        image_check = container.docker_config["Healthcheck"]["Test"]
        compose_check = suite["model"]["services"][name]["healthcheck"]["test"]
        for test in (image_check, compose_check):
            assert test[0] == "CMD", test
            result = container.exec(*test[1:])
            assert result.returncode == 0, f"{name} {test}: {result.stderr}"


def test_the_image_holds_no_uv_no_sources_no_launcher_and_no_tests(suite):
    container = suite["containers"]["user-service"]
    probe = (
        "import importlib.util, shutil, pathlib, user_service;"
        "print(shutil.which('uv'), pathlib.Path('/src').exists(), pathlib.Path(user_service.__file__).parent,"
        " importlib.util.find_spec('titanium_dev'))"
    )
    result = container.exec("python", "-c", probe)
    assert result.returncode == 0, result.stderr
    uv, sources, package, launcher = result.stdout.split()
    assert (uv, sources, launcher) == ("None", "False", "None"), "no uv, no sources, no development launcher"
    assert package.startswith("/opt/venv/lib/") and "site-packages" in package
    listing = container.exec(
        "python", "-c", f"import pathlib; print([p.name for p in pathlib.Path('{package}').iterdir()])"
    )
    assert "tests" not in listing.stdout


def test_a_registered_user_logs_in_through_the_containerised_request_path(suite):
    balancer = f"http://127.0.0.1:{suite['containers']['load-balancer'].port}"
    username = f"c{uuid.uuid4().hex[:10]}"
    password = "a-long-enough-password-1"
    status, created = http(
        "POST",
        f"{balancer}/api/users",
        {"username": username, "email": f"{username}@example.com", "password": password},
    )
    assert status == 201, created
    status, login = http("POST", f"{balancer}/api/auth/login", {"username": username, "password": password})
    assert status == 200, login
    status, verified = http("GET", f"{balancer}/api/auth/verify", token=login["access_token"])
    assert status == 200 and verified["valid"] and verified["username"] == username, verified
    status, _ = http("POST", f"{balancer}/api/auth/login", {"username": username, "password": "wrong-password-123"})
    assert status == 401

    async def stored() -> list:
        connection = await asyncpg.connect(POSTGRES_DSN.rsplit("/", 1)[0] + "/" + suite["database"], timeout=5)
        try:
            return await connection.fetch("SELECT username FROM users WHERE username = $1", username)
        finally:
            await connection.close()

    assert [row["username"] for row in asyncio.run(stored())] == [username]


def test_the_balancer_spreads_requests_over_both_gateways(suite):
    containers = suite["containers"]
    balancer = f"http://127.0.0.1:{containers['load-balancer'].port}"
    for _ in range(20):
        status, _ = http("GET", f"{balancer}/api/posts")
        assert status == 200
    status, stats = http("GET", f"{balancer}/stats")
    assert status == 200
    members = {m["url"]: m for pool in stats["load-balancer"]["pools"].values() for m in pool["members"]}
    for gateway in ("api-gateway", "api-gateway-2"):
        member = members[f"http://127.0.0.1:{containers[gateway].port}"]
        assert member["healthy"] and member["requests"] > 0, (gateway, member)
    assert stats["user-service"]["service_status"] == "online", stats["user-service"]


def test_the_dashboard_chartjs_and_the_blog_spa_come_from_the_images(suite):
    balancer = f"http://127.0.0.1:{suite['containers']['load-balancer'].port}"
    status, page = http("GET", f"{balancer}/")
    assert status == 200 and 'id="toggle-ws-heartbeat-btn"' in page
    status, chartjs = http("GET", f"{balancer}/vendor/chart.js/chart.umd.js")
    assert status == 200 and "Chart.js v4" in chartjs
    status, spa = http("GET", f"{balancer}/blog/")
    assert status == 200 and "<html" in spa.lower()


def test_sigterm_stops_every_container_cleanly(suite):
    """Each stops within SHUTDOWN_TIMEOUT_S (+5 s) of SIGTERM, without being killed: aiohttp services exit 0;
    uvicorn finishes its graceful shutdown, then re-raises the signal (buildah reports a non-zero status then)."""
    # Last in this module: the containers stop here (the fixture's teardown only cleans up).
    containers = suite["containers"]
    for name in reversed(list(containers)):
        container = containers[name]
        timeout = float(container.env["SHUTDOWN_TIMEOUT_S"]) + 5
        code = container.stop(timeout)
        log = container.log()
        graceful = code == 0 or (code is not None and "Finished server process" in log)
        assert graceful, f"{name} did not stop cleanly on SIGTERM within {timeout:.0f} s ({code}):\n{log}"


def test_a_source_change_rebuilds_only_the_workspace_layer(built, tmp_path, request):
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
    build = images.build_image("user-service", context, tag=f"titanium/user-service-changed-{RUN_ID}")
    request.addfinalizer(build.remove)
    assert "Using cache" in build.step("--no-install-workspace"), build.output
    assert "Using cache" not in build.step("ln -s"), build.output
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report["rebuild_after_source_change_s"] = round(build.seconds, 1)
    REPORT.write_text(json.dumps(report, indent=2))
