"""blog-service tests use real user-service and auth-service servers (tests/support/identity.py)."""

from tests.support.identity import identity, identity_settings

__all__ = ["identity", "identity_settings"]
