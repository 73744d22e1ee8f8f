from typing import Annotated

from pydantic import field_validator
from pydantic_settings import NoDecode

from titanium_common.settings import ServiceSettings


class LoadBalancerSettings(ServiceSettings):
    service_name: str = "load-balancer"
    port: int = 7100
    # Comma-separated replicas: GATEWAY_URLS=http://a:8000,http://b:8000
    gateway_urls: Annotated[list[str], NoDecode] = ["http://127.0.0.1:8000"]
    max_body_bytes: int = 100 * 1024 * 1024

    @field_validator("gateway_urls", mode="before")
    @classmethod
    def split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            return [u.strip() for u in value.split(",") if u.strip()]
        return value
