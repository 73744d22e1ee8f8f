"""The small static server: the page, Chart.js from node_modules, the config, the kit's endpoints, clean 404s."""

import re

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from dashboard_ui.main import create_app
from dashboard_ui.settings import DashboardSettings
from tests.support.probes import check_every_encoded_byte, check_no_server_error, encoded_segments
from tests.support.servers import serving
from titanium_common.browser_security import BROWSER_SECURITY_HEADERS
from titanium_common.catalog import CATALOGUE


@pytest.fixture
async def client():
    settings = DashboardSettings(poll_interval_s=1.5)
    async with serving(create_app(settings)) as url, aiohttp.ClientSession(url) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "content_type", "needle"),
    [
        ("/", "text/html", 'id="toggle-ws-heartbeat-btn"'),
        ("/index.html", "text/html", 'src="vendor/chart.js/chart.umd.js"'),
        ("/app.js", "application/javascript", "/api/ws-heartbeat"),
        ("/styles.css", "text/css", ".badge-idle"),
        ("/vendor/chart.js/chart.umd.js", "application/javascript", "Chart.js v4"),
    ],
)
async def test_serves_the_page_and_chartjs(client, path, content_type, needle):
    answer = await client.get(path)
    assert answer.status == 200
    assert answer.content_type == content_type
    assert needle in await answer.text()


async def test_the_page_names_no_outside_host(client):
    for path in ("/", "/app.js", "/styles.css"):
        text = await (await client.get(path)).text()
        assert "http://" not in text
        assert "https://" not in text


async def test_config_carries_the_poll_interval_and_docs_links(client):
    config = await (await client.get("/dashboard-config.json")).json()
    assert config["poll_interval_s"] == 1.5
    assert config["api_docs"]["user-service"] == "/api/docs?urls.primaryName=user-service"
    assert list(config["api_docs"]) == [s.name for s in CATALOGUE.documented()]
    assert config["services"] == list(CATALOGUE.names())


@pytest.mark.parametrize(
    "path",
    [
        "/missing.js",
        "/vendor/chart.js/missing.js",
        "/vendor/chart.js/../../package.json",
        "/%2e%2e/pyproject.toml",
        "/vendor/chart.js/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/vendor/chart.js/",
    ],
)
async def test_unknown_or_escaping_paths_are_a_json_404(client, path):
    answer = await client.get(path, headers={"X-Request-ID": "dash-404"})
    assert answer.status == 404
    assert (await answer.json())["request_id"] == "dash-404"


async def test_writes_are_refused(client):
    answer = await client.post("/app.js", data=b"x")
    assert answer.status == 405
    assert "detail" in await answer.json()


async def test_kit_endpoints(client):
    assert (await (await client.get("/health")).json())["service"] == "dashboard-ui"
    assert (await client.get("/ready")).status == 200
    await client.get("/app.js")
    stats = await (await client.get("/stats")).json()
    assert stats["service"] == "dashboard-ui"
    assert stats["requests"]["total"] >= 1
    assert "http_requests_total" in await (await client.get("/metrics")).text()


def test_refuses_to_start_without_chartjs(tmp_path):
    with pytest.raises(RuntimeError, match="npm ci"):
        create_app(DashboardSettings(chartjs_dir=tmp_path))


# Where a path's bytes land: the page's folder, Chart.js's folder, and after a real file's name.
BYTE_PLACES = ["/{}", "/{}x", "/app.js{}", "/vendor/chart.js/{}", "/vendor/chart.js/chart.umd.js{}"]


async def _fetch(client, raw_path: str) -> tuple[int, bytes]:
    async with client.get(URL(raw_path, encoded=True)) as answer:
        return answer.status, await answer.read()


@pytest.mark.parametrize("place", BYTE_PLACES)
async def test_every_percent_encoded_byte_is_a_file_or_a_json_404(client, place):
    await check_every_encoded_byte(lambda raw_path: _fetch(client, raw_path), place)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=encoded_segments, place=st.sampled_from(BYTE_PLACES))
async def test_any_bytes_in_a_path_are_a_file_or_a_json_404(client, segment, place):
    raw_path = place.format(segment)
    check_no_server_error(raw_path, *await _fetch(client, raw_path))


@pytest.mark.parametrize("path", ["/", "/index.html", "/app.js", "/styles.css", "/missing.js"])
async def test_every_answer_carries_the_browser_security_headers(client, path):
    answer = await client.get(path)
    for name, value in BROWSER_SECURITY_HEADERS.items():
        assert answer.headers[name] == value, name
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy


async def test_the_page_has_no_inline_script_style_or_handler(client):
    page = await (await client.get("/")).text()
    assert "<style" not in page and " style=" not in page
    assert all("src=" in tag for tag in page.split("<script")[1:])
    assert not re.search(r"\son[a-z]+=", page)
