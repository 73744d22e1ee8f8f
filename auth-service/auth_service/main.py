import contextlib

from fastapi import FastAPI

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.http_client import create_client_session
from titanium_common.runner import serve

from . import api
from .settings import AuthSettings
from .throttle import LoginThrottle
from .tokens import TokenIssuer, signing_secret
from .users import UserDirectory


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()
    tokens = TokenIssuer(signing_secret(settings), settings.jwt_issuer, settings.jwt_ttl_s)
    throttle = LoginThrottle(
        settings.redis_url,
        settings.redis_prefix,
        settings.login_failures_per_user,
        settings.login_failures_per_address,
        settings.login_window_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        session = create_client_session()
        app.state.users = UserDirectory(session, settings.user_service_url)
        try:
            yield
        finally:
            await session.close()
            await throttle.close()

    app = create_fastapi_app(
        settings, title="auth-service", distribution="auth-service", routers=[api.router], lifespan=lifespan
    )
    app.state.tokens = tokens
    app.state.throttle = throttle

    async def throttle_figures() -> dict:
        backend = "redis" if throttle.client is not None and throttle.redis_problem is None else "memory"
        figure = {"login_throttle": {"backend": backend}}
        if throttle.redis_problem:
            figure["login_throttle"]["reason"] = throttle.redis_problem
        return figure

    app.state.kit.add_stats_provider(throttle_figures)
    return app


def main() -> None:
    settings = AuthSettings()
    serve(create_app(settings), settings)
