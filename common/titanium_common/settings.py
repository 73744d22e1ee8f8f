"""Settings base: every service's configuration comes from the environment (a `.env` file is optional)."""

from importlib import metadata
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Fields every service has; each service subclasses it and sets its own `service_name` and `port`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    service_name: str = "titanium"
    host: str = "127.0.0.1"
    port: int = 8000
    env: Literal["development", "production", "test"] = "production"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # Seconds a stopping service gives in-flight requests before it closes them.
    shutdown_timeout_s: float = 10.0

    @property
    def is_development(self) -> bool:
        """Only development may make up local secrets: a test or production process must be given them."""
        return self.env == "development"


# The services behind the gateway, by name, and the setting of each proxy that says where it is.
SERVICE_URL_SETTINGS = {
    "auth-service": "auth_service_url",
    "user-service": "user_service_url",
    "blog-service": "blog_service_url",
    "cluster-monitor": "cluster_monitor_url",
    "edge-config": "edge_config_url",
    "ops-mcp": "ops_mcp_url",
}


class ProxyServerSettings(ServiceSettings):
    """What the aiohttp proxies (load balancer, gateway) also bound on their client side."""

    def service_urls(self) -> dict[str, object]:
        """Each service's URL setting, by service name (a subclass has the fields)."""
        return {name: getattr(self, field) for name, field in SERVICE_URL_SETTINGS.items()}

    # A request's line and headers must be in within this from its first byte (or from the connection's opening),
    # else the connection is closed (slowloris). Go's ReadHeaderTimeout, as the originals had it.
    header_read_timeout_s: float = Field(default=2.0, gt=0, le=60)
    # A client that sends nothing of a body it announced for this long gets 408 and is closed.
    body_read_timeout_s: float = Field(default=10.0, gt=0)


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0.0.0"
