from fastapi import FastAPI

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.runner import serve

from . import api
from .settings import EdgeConfigSettings


def create_app(settings: EdgeConfigSettings | None = None) -> FastAPI:
    settings = settings or EdgeConfigSettings()
    return create_fastapi_app(settings, title="edge-config", distribution="edge-config", routers=[api.router])


def main() -> None:
    settings = EdgeConfigSettings()
    serve(create_app(settings), settings)
