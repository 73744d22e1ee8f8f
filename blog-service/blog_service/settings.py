from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL


class BlogSettings(DatabaseSettings):
    service_name: str = "blog-service"
    port: int = DEFAULT_PORTS["blog-service"]
    auth_service_url: str = Field(default=local_url("auth-service"), description="Where auth-service verifies tokens.")
    redis_url: str = Field(
        default="",
        description="Where the verify cache hears revoked users (Redis pub/sub; empty: it keeps an answer at most a "
        "second) and, with PostgreSQL, where the post cache's replicas share what changed (empty: no post cache).",
    )
    redis_prefix: str = Field(default="titanium:blog-service:", description="blog-service's key prefix in Redis.")
    revocation_channel: str = Field(default=DEFAULT_CHANNEL, description="The Redis pub/sub channel of revoked users.")
    post_cache_max_age_s: float = Field(
        default=5.0, ge=0, description="How long the post cache keeps an answer at most (0: no cache)."
    )
    post_cache_entries: int = Field(
        default=256, ge=0, description="How many answers (pages and posts) the post cache keeps."
    )
