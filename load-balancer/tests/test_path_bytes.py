"""Any bytes in a path, percent-encoded, through the balancer's own routes and the pages behind it (the real
dashboard server as the dashboard pool, an echo backend as the gateway): an answer or a JSON 4xx, never a 5xx."""

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from dashboard_ui.main import create_app as create_dashboard
from dashboard_ui.settings import DashboardSettings
from tests.support.probes import check_every_encoded_byte, check_no_server_error, encoded_segments

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


async def _fetch(http: aiohttp.ClientSession, raw_path: str) -> tuple[int, bytes]:
    async with http.get(URL(raw_path, encoded=True), allow_redirects=False) as answer:
        return answer.status, await answer.read()


@pytest.mark.parametrize("place", PLACES)
async def test_every_percent_encoded_byte_is_answered_without_a_server_error(balancer, place):
    await check_every_encoded_byte(lambda raw_path: _fetch(balancer, raw_path), place)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=encoded_segments, place=st.sampled_from(PLACES))
async def test_any_bytes_in_a_path_are_answered_without_a_server_error(balancer, segment, place):
    raw_path = place.format(segment)
    check_no_server_error(raw_path, *await _fetch(balancer, raw_path))
