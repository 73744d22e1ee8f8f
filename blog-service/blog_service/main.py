from fastapi import FastAPI

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.runner import serve

from . import api
from .settings import BlogSettings


def create_app(settings: BlogSettings | None = None) -> FastAPI:
    settings = settings or BlogSettings()
    return create_fastapi_app(settings, title="blog-service", distribution="blog-service", routers=[api.router])


def main() -> None:
    settings = BlogSettings()
    serve(create_app(settings), settings)
