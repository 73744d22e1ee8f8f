from fastapi import FastAPI

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.runner import serve

from . import api
from .settings import UserSettings


def create_app(settings: UserSettings | None = None) -> FastAPI:
    settings = settings or UserSettings()
    return create_fastapi_app(settings, title="user-service", distribution="user-service", routers=[api.router])


def main() -> None:
    settings = UserSettings()
    serve(create_app(settings), settings)
