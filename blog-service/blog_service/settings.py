from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL


class BlogSettings(DatabaseSettings):
    service_name: str = "blog-service"
    port: int = DEFAULT_PORTS["blog-service"]
    auth_service_url: str = local_url("auth-service")
    # Where the verify cache hears revoked users (Redis pub/sub); empty: it keeps an answer at most a second. With
    # PostgreSQL, also where the post cache's replicas share what changed (empty: no post cache, see cache.py).
    redis_url: str = ""
    redis_prefix: str = "titanium:blog-service:"
    revocation_channel: str = DEFAULT_CHANNEL
    # How long the post cache keeps an answer at most (0: no cache), and how many (pages and posts) it keeps.
    post_cache_max_age_s: float = Field(default=5.0, ge=0)
    post_cache_entries: int = Field(default=256, ge=0)
