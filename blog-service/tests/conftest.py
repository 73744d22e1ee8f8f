"""blog-service tests use real user-service and auth-service servers (tests/support/identity.py)."""

import pytest

from blog_service.settings import BlogSettings
from tests.support.identity import identity, identity_settings

__all__ = ["blog_settings", "identity", "identity_settings"]


@pytest.fixture
def blog_settings(identity, identity_settings, database_target, redis_target) -> BlogSettings:
    """blog-service beside user-service in the same database (each has its own tables and migration table),
    hearing user-service's revocations; its post cache's keys under this test's Redis prefix."""
    user_settings, _ = identity_settings
    return BlogSettings(
        env="test",
        auth_service_url=identity.auth_url,
        redis_url=user_settings.redis_url,
        redis_prefix=redis_target.prefix + "blog:",
        revocation_channel=user_settings.revocation_channel,
        **database_target.settings(),
    )
