import contextlib
from pathlib import Path

from fastapi import FastAPI

from titanium_common.db import Database
from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.http_client import create_client_session
from titanium_common.revocations import RevocationFeed
from titanium_common.runner import serve

from . import api
from .devices import DeviceCookies
from .sessions import RefreshTokens
from .settings import AuthSettings
from .throttle import LoginThrottle
from .tokens import TokenIssuer, signing_secret
from .users import UserDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()
    secret = signing_secret(settings)
    tokens = TokenIssuer(secret, settings.jwt_issuer, settings.jwt_ttl_s)
    db = Database.from_settings(settings, migrations=MIGRATIONS)
    throttle = LoginThrottle(
        settings.redis_url,
        settings.redis_prefix,
        per_user=settings.login_failures_per_user,
        per_address=settings.login_failures_per_address,
        per_account=settings.login_failures_per_account,
        window_s=settings.login_window_s,
        backoff_base_s=settings.login_backoff_base_s,
        backoff_max_s=settings.login_backoff_max_s,
        account_interval_s=settings.login_account_interval_s,
        known_client_ttl_s=settings.login_known_client_ttl_s,
    )
    feed = RevocationFeed(settings.redis_url, settings.revocation_channel)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await db.start()
        session = create_client_session()
        app.state.users = UserDirectory(
            session,
            settings.user_service_url,
            feed,
            check_timeout_s=settings.user_service_timeout_s,
            state_timeout_s=settings.token_state_timeout_s,
        )
        await feed.start()
        try:
            yield
        finally:
            await feed.close()
            await session.close()
            await throttle.close()
            await db.close()

    app = create_fastapi_app(
        settings, title="auth-service", distribution="auth-service", routers=[api.router], lifespan=lifespan
    )
    app.state.tokens = tokens
    app.state.throttle = throttle
    app.state.devices = DeviceCookies(secret, settings.login_known_client_ttl_s)
    app.state.refresh_tokens = RefreshTokens(db, settings.refresh_token_ttl_s)
    db.attach(app.state.kit)

    async def throttle_figures() -> dict:
        backend = "redis" if throttle.client is not None and throttle.redis_problem is None else "memory"
        figure = {"login_throttle": {"backend": backend}, "revocations": {"listening": feed.listening}}
        if throttle.redis_problem:
            figure["login_throttle"]["reason"] = throttle.redis_problem
        return figure

    app.state.kit.add_stats_provider(throttle_figures)
    return app


def main() -> None:
    settings = AuthSettings()
    serve(create_app(settings), settings)
