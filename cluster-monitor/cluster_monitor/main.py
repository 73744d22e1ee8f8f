from fastapi import FastAPI

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.runner import serve

from . import api
from .settings import ClusterMonitorSettings


def create_app(settings: ClusterMonitorSettings | None = None) -> FastAPI:
    settings = settings or ClusterMonitorSettings()
    return create_fastapi_app(settings, title="cluster-monitor", distribution="cluster-monitor", routers=[api.router])


def main() -> None:
    settings = ClusterMonitorSettings()
    serve(create_app(settings), settings)
