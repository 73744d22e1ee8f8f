import contextlib
from pathlib import Path

from fastapi import FastAPI

from titanium_common.auth_client import settings_token_verifier
from titanium_common.db import Database
from titanium_common.fastapi_app import BrowserPageFiles, create_fastapi_app
from titanium_common.runner import serve
from titanium_common.versioned_cache import versioned_cache

from . import api
from .settings import BlogSettings
from .store import CHANGES, PostStore

HERE = Path(__file__).parent


def create_app(settings: BlogSettings | None = None) -> FastAPI:
    settings = settings or BlogSettings()
    db = Database.from_settings(settings, migrations=HERE / "migrations")
    cache = versioned_cache(
        name="post cache",
        kinds=CHANGES,
        database_backend=db.backend,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        max_age_s=settings.post_cache_max_age_s,
        max_entries=settings.post_cache_entries,
    )
    store = PostStore(db, cache)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await db.start()
        try:
            async with settings_token_verifier(settings) as app.state.verifier:
                yield
        finally:
            await cache.close()
            await db.close()

    app = create_fastapi_app(
        settings, title="blog-service", distribution="blog-service", routers=[api.router], lifespan=lifespan
    )
    app.state.store = store
    app.mount("/blog", BrowserPageFiles(directory=HERE / "static", html=True), name="blog-spa")
    db.attach(app.state.kit)

    async def post_figures() -> dict:
        count = await store.count()
        await cache.recheck()
        return {"posts": count, "post_count": count, "cache": cache.stats()}

    app.state.kit.add_stats_provider(post_figures)
    return app


def main() -> None:
    settings = BlogSettings()
    serve(create_app(settings), settings)
