from pydantic import Field

from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL


class BlogSettings(DatabaseSettings):
    service_name: str = "blog-service"
    port: int = 8003
    auth_service_url: str = "http://127.0.0.1:8001"
    # Where the verify cache hears revoked users (Redis pub/sub); empty: it keeps an answer at most a second. With
    # PostgreSQL, also where the post cache's replicas share what changed (empty: no post cache, see cache.py).
    redis_url: str = ""
    redis_prefix: str = "titanium:blog-service:"
    revocation_channel: str = DEFAULT_CHANNEL
    # How long the post cache keeps an answer at most (0: no cache), and how many (pages and posts) it keeps.
    post_cache_max_age_s: float = Field(default=5.0, ge=0)
    post_cache_entries: int = Field(default=256, ge=0)
