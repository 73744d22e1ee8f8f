"""Any bytes in a path, percent-encoded, through the balancer's own routes and the pages behind it (the real
dashboard server as the dashboard pool, an echo backend as the gateway): an answer or a JSON 4xx, never a 5xx."""

from urllib.parse import quote_from_bytes

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from dashboard_ui.main import create_app as create_dashboard
from dashboard_ui.settings import DashboardSettings

PLACES = [
    "/{}",
    "/{}x",
    "/app.js{}",
    "/stats{}",
    "/lb-health{}",
    "/health{}",
    "/blog{}",
    "/internal/{}",
    "/api/{}",
    "/api/ws-heartbeat{}",
    "/vendor/chart.js/{}",
]


@pytest.fixture
async def balancer(servers, backend_app, start_lb, lb_settings):
    gateway = await servers(backend_app("gw"))
    dashboard = await servers(create_dashboard(DashboardSettings(env="test")))
    lb = await start_lb(lb_settings(gateway_urls=[gateway.url], dashboard_urls=[dashboard.url]))
    async with aiohttp.ClientSession(lb.url) as http:
        yield http


async def _never_a_server_error(http: aiohttp.ClientSession, raw_path: str) -> None:
    async with http.get(URL(raw_path, encoded=True), allow_redirects=False) as answer:
        assert answer.status < 500, (raw_path, answer.status, await answer.text())
        if answer.status >= 400:
            assert "detail" in await answer.json(), raw_path


@pytest.mark.parametrize("place", PLACES)
async def test_every_percent_encoded_byte_is_answered_without_a_server_error(balancer, place):
    for byte in range(256):
        await _never_a_server_error(balancer, place.format(f"%{byte:02X}"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=st.binary(min_size=1, max_size=300), place=st.sampled_from(PLACES))
async def test_any_bytes_in_a_path_are_answered_without_a_server_error(balancer, segment, place):
    await _never_a_server_error(balancer, place.format(quote_from_bytes(segment, safe="")))
