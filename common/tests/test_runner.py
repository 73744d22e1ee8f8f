"""The runner's collector settings: what start-up built is frozen once the app's own start-up is done."""

import contextlib
import gc

import pytest
from aiohttp import web
from fastapi import FastAPI

from titanium_common.runner import freeze_after_start_up


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
