from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL


class BlogSettings(DatabaseSettings):
    service_name: str = "blog-service"
    port: int = 8003
    auth_service_url: str = "http://127.0.0.1:8001"
    # Where the verify cache hears revoked users (Redis pub/sub); empty: it keeps an answer at most a second.
    redis_url: str = ""
    revocation_channel: str = DEFAULT_CHANNEL
