from pydantic import Field

from titanium_common.db import DatabaseSettings


class UserSettings(DatabaseSettings):
    service_name: str = "user-service"
    port: int = 8002
    auth_service_url: str = "http://127.0.0.1:8001"
    # Empty: no cache; reads and writes go to the database and /stats says degraded.
    redis_url: str = ""
    redis_prefix: str = "titanium:user-service:"
    cache_ttl_s: int = Field(default=300, ge=1)
    admin_username: str = ""
    admin_password: str = ""
    admin_email: str = "admin@localhost.localdomain"
