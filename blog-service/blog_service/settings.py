from titanium_common.db import DatabaseSettings


class BlogSettings(DatabaseSettings):
    service_name: str = "blog-service"
    port: int = 8003
    auth_service_url: str = "http://127.0.0.1:8001"
