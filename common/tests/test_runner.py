"""The runner: what start-up built is frozen once the app's own start-up is done; a request its connection handler's
parser refuses is answered in the suite's JSON error shape, with one log line and nothing of the request echoed."""

import asyncio
import contextlib
import gc
import logging

import pytest
from aiohttp import web
from fastapi import FastAPI

from tests.support.probes import MALFORMED_REQUESTS, check_json_refusal
from tests.support.servers import free_port, raw_exchange
from titanium_common import runner as runner_module
from titanium_common.runner import HeaderTimedAppRunner, freeze_after_start_up, stop_within


@pytest.fixture(autouse=True)
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_a_fastapi_app_is_frozen_after_its_own_lifespan_started():
    seen_during_start_up = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.pool = [object() for _ in range(100)]
        seen_during_start_up.append(gc.get_freeze_count())
        yield

    app = FastAPI(lifespan=lifespan)
    freeze_after_start_up(app)
    async with app.router.lifespan_context(app):
        assert seen_during_start_up == [0]
        assert gc.get_freeze_count() > 0
        # The pool start-up made is in the permanent generation now: no collection walks it.
        assert not any(o is app.state.pool for o in gc.get_objects())


async def test_an_aiohttp_app_is_frozen_after_its_other_start_up_hooks():
    seen_during_start_up = []

    async def start_up(app: web.Application) -> None:
        seen_during_start_up.append(gc.get_freeze_count())

    app = web.Application()
    app.on_startup.append(start_up)
    freeze_after_start_up(app)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert seen_during_start_up == [0]
        assert gc.get_freeze_count() > 0
    finally:
        await runner.cleanup()


@pytest.fixture
async def header_timed_server():
    """A plain aiohttp app served by the runner's connection handler (as the proxies and the dashboard are)."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = HeaderTimedAppRunner(app, header_timeout_s=5.0, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("probe", MALFORMED_REQUESTS, ids=lambda probe: probe.name)
async def test_a_request_the_parser_refuses_gets_a_json_error_and_one_warning_line(header_timed_server, probe, caplog):
    caplog.set_level(logging.DEBUG)
    answer = await raw_exchange(header_timed_server, probe.wire)
    check_json_refusal(answer, probe)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)], caplog.text
    assert probe.marker.decode("latin-1") not in caplog.text
    assert str(probe.status) in records[0].getMessage()


async def test_a_good_request_after_a_refused_one_is_answered(header_timed_server):
    await raw_exchange(header_timed_server, MALFORMED_REQUESTS[0].wire)
    answer = await raw_exchange(header_timed_server, b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")


async def test_a_stop_says_when_it_began_and_what_it_took(caplog):
    runner = web.AppRunner(web.Application())
    await runner.setup()
    with caplog.at_level(logging.INFO, "titanium.runner"):
        assert await stop_within(runner, 1.0) is True
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0] == "stopping: no new connections; 0 open, given up to 1 s to finish"
    assert messages[1].startswith("stopped in "), messages


async def test_a_stop_that_overruns_its_budget_names_what_is_still_pending(monkeypatch, caplog):
    """A cleanup hook waiting on a dependency that never answers: the stop gives up after the drain and the cleanup
    budget, and the log names the hook and where it waits (the caller then exits before a SIGKILL would)."""
    monkeypatch.setattr(runner_module, "CLEANUP_BUDGET_S", 1.0)
    app = web.Application()

    async def flush_to_a_hung_store(app: web.Application) -> None:
        await asyncio.Event().wait()

    app.on_cleanup.append(flush_to_a_hung_store)
    runner = web.AppRunner(app)
    await runner.setup()
    with caplog.at_level(logging.INFO, "titanium.runner"):
        assert await stop_within(runner, 0.1) is False
    overran = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(overran) == 1 and overran[0].getMessage().startswith("stop overran 1.1 s, waiting in cleanup > ")
    assert "> flush_to_a_hung_store > wait (" in overran[0].getMessage(), overran[0].getMessage()
