"""Settings base: every service's configuration comes from the environment (a `.env` file is optional)."""

from importlib import metadata
from typing import Literal

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


def package_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "0.0.0"
