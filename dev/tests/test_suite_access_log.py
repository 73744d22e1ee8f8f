"""What `make run` shows of the traffic: by default a line per second per service with errors on lines of their
own; with ACCESS_LOG=every, each request's line. A real gateway under the launcher, its output as relayed."""

import io
import re

import httpx
import pytest

from tests.support.polling import eventually
from titanium_dev.suite import SERVICES, Suite, free_port

GATEWAY = next(s for s in SERVICES if s.name == "api-gateway")


def _requests(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        for path in ("/api/health", "/api/health", "/health", "/no-such-route"):
            http.get(path)


def summaries_in(text: str) -> list[tuple[str, str]]:
    return re.findall(r"api-gateway +\| .* INFO .*titanium.access: (\d+) requests in the last 1 s \((.*?)\)", text)


@pytest.mark.parametrize("access_log", [None, "every"])
async def test_the_launcher_relays_a_summary_per_second_or_every_line(tmp_path, access_log):
    echo = io.StringIO()
    extra_env = {"ACCESS_LOG": access_log} if access_log else {}
    suite = Suite(ports={"api-gateway": free_port()}, data_dir=tmp_path, start_redis=False, echo=echo,
                  services=(GATEWAY,), extra_env=extra_env)  # fmt: skip
    with suite:
        _requests(suite.url("api-gateway"))
        expected = "api-gateway     | .* INFO .*GET /no-such-route 404 "
        await eventually(lambda: re.search(expected, echo.getvalue()))
        if access_log is None:  # the three requests summed up, on one line or two (a second may end among them)
            await eventually(lambda: sum(int(n) for n, _ in summaries_in(echo.getvalue())) == 3)
    text = echo.getvalue()
    successes = re.findall(r"GET /api/health 200 ", text)
    summaries = summaries_in(text)
    assert "GET /health 200" not in text  # a probe: DEBUG in either mode
    if access_log is None:
        assert successes == [] and "4xx 1" in " ".join(classes for _, classes in summaries)
    else:
        assert len(successes) == 2 and summaries == []
