from fastapi import FastAPI

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.runner import serve

from . import api
from .settings import AuthSettings


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()
    return create_fastapi_app(settings, title="auth-service", distribution="auth-service", routers=[api.router])


def main() -> None:
    settings = AuthSettings()
    serve(create_app(settings), settings)
