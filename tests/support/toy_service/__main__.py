"""`python -m tests.support.toy_service`: the smallest service the kit makes, one route under its prefix."""

from fastapi import APIRouter

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.runner import serve
from titanium_common.settings import ServiceSettings

from . import TOY

router = APIRouter()


@router.get("/api/toy/greeting")
async def greeting() -> dict[str, str]:
    return {"greeting": "hello from the toy service"}


class ToySettings(ServiceSettings):
    service_name: str = TOY.name
    port: int = TOY.port


def main() -> None:
    settings = ToySettings()
    serve(create_fastapi_app(settings, title=TOY.name, routers=[router]), settings)


main()
