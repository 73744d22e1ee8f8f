import contextlib
from pathlib import Path

from fastapi import FastAPI

from titanium_common.auth_client import settings_token_verifier
from titanium_common.db import Database
from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.revocations import RevocationFeed
from titanium_common.runner import serve
from titanium_common.throttling import RateLimiter
from titanium_common.versioned_cache import versioned_cache

from . import api
from .passwords import Passwords
from .settings import UserSettings
from .store import CHANGES, UserStore

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: UserSettings | None = None) -> FastAPI:
    settings = settings or UserSettings()
    db = Database.from_settings(settings, migrations=MIGRATIONS)
    cache = versioned_cache(
        name="user cache",
        kinds=CHANGES,
        database_backend=db.backend,
        redis_url=settings.redis_url,
        redis_prefix=settings.redis_prefix,
        max_age_s=settings.user_cache_max_age_s,
        max_entries=settings.user_cache_entries,
    )
    passwords = Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        workers=settings.password_workers,
    )
    revocations = RevocationFeed(settings.redis_url, settings.revocation_channel)
    registrations = RateLimiter(settings.redis_url, settings.redis_prefix)
    store = UserStore(
        db,
        cache,
        passwords,
        revocations,
        check_budget_s=settings.credentials_check_budget_s,
        hash_budget_s=settings.password_hash_budget_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await db.start()
        try:  # a start-up that fails (no admin) still closes what it opened, so the process ends at once
            if settings.admin_username and settings.admin_password:
                await store.ensure_admin(settings.admin_username, settings.admin_password, settings.admin_email)
            async with settings_token_verifier(settings) as app.state.verifier:
                # This service's own verify cache forgets a user it revoked at once, before Redis says so.
                revocations.add_listener(app.state.verifier.forget)
                yield
        finally:
            await revocations.close()
            await registrations.close()
            passwords.close()
            await cache.close()
            await db.close()

    app = create_fastapi_app(
        settings,
        title="user-service",
        distribution="user-service",
        routers=[api.router, api.internal],
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.registrations = registrations
    db.attach(app.state.kit)

    async def user_figures() -> dict:
        await cache.recheck()
        figures = {"users": await store.count(), "cache": cache.stats()} | passwords.figures()
        if cache.problem:
            figures |= {"service_status": "degraded", "degraded_reasons": [cache.problem]}
        return figures | {"registration_limit": registrations.figure()}

    app.state.kit.add_stats_provider(user_figures)
    return app


def main() -> None:
    settings = UserSettings()
    serve(create_app(settings), settings)
