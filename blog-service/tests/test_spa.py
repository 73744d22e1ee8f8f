"""The blog SPA's files: the browser security headers on every one, and any bytes in a path answered with a file
a redirect
or a JSON 4xx, never a server error. (The SPA in Chromium: tests/system/test_blog_spa.py.)"""

import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blog_service.main import create_app
from blog_service.settings import BlogSettings
from tests.support.probes import check_every_encoded_byte, check_no_server_error, encoded_segments
from tests.support.servers import free_port, serving
from titanium_common.browser_security import BROWSER_SECURITY_HEADERS

PLACES = ["/blog/{}", "/blog/{}x", "/blog/app.js{}", "/blog/{}/index.html"]


@pytest.fixture
async def spa(tmp_path):
    # The SPA's files need neither a token check nor data: nothing answers at the auth address.
    settings = BlogSettings(env="test", data_dir=tmp_path, auth_service_url=f"http://127.0.0.1:{free_port()}")
    async with serving(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


@pytest.mark.parametrize("path", ["/blog/", "/blog/index.html", "/blog/app.js", "/blog/style.css"])
async def test_every_file_carries_the_browser_security_headers(spa, path):
    answer = await spa.get(path)
    assert answer.status_code == 200
    for name, value in BROWSER_SECURITY_HEADERS.items():
        assert answer.headers[name] == value, name


async def test_the_page_has_no_inline_script_style_or_handler(spa):
    page = (await spa.get("/blog/")).text
    assert "<style" not in page and " style=" not in page
    assert all("src=" in tag for tag in page.split("<script")[1:])
    assert not re.search(r"\son[a-z]+=", page)


async def _fetch(spa: httpx.AsyncClient, raw_path: str) -> tuple[int, bytes]:
    answer = await spa.get(httpx.URL(spa.base_url.join("/"), raw_path=raw_path.encode()))
    return answer.status_code, answer.content


@pytest.mark.parametrize("place", PLACES)
async def test_every_percent_encoded_byte_is_answered_without_a_server_error(spa, place):
    await check_every_encoded_byte(lambda raw_path: _fetch(spa, raw_path), place)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=encoded_segments, place=st.sampled_from(PLACES))
async def test_any_bytes_in_a_path_are_answered_without_a_server_error(spa, segment, place):
    raw_path = place.format(segment)
    check_no_server_error(raw_path, *await _fetch(spa, raw_path))
