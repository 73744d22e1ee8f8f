from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL


class BlogSettings(DatabaseSettings):
    service_name: str = "blog-service"
    port: int = DEFAULT_PORTS["blog-service"]
    auth_service_url: str = local_url("auth-service")
    # Where the verify cache hears revoked users (Redis pub/sub); empty: it keeps an answer at most a second.
    redis_url: str = ""
    revocation_channel: str = DEFAULT_CHANNEL
