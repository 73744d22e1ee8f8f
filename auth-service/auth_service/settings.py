from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL


class AuthSettings(DatabaseSettings):
    service_name: str = "auth-service"
    port: int = DEFAULT_PORTS["auth-service"]
    user_service_url: str = local_url("user-service")
    # Required outside ENV=development (where a random one is generated per process, with a warning).
    jwt_secret: str = ""
    jwt_issuer: str = "titanium-auth"
    # Access tokens are short-lived; a client keeps its session with the refresh token.
    jwt_ttl_s: int = Field(default=900, ge=60, le=900)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, ge=300, le=90 * 24 * 3600)
    # Empty: failed-login counters live in this process only, and verify caches hear no revocations (they keep
    # an answer at most a second).
    redis_url: str = ""
    redis_prefix: str = "titanium:auth-service:"
    revocation_channel: str = DEFAULT_CHANNEL
    # Failed logins: per (user, address), per address, and per user over all addresses (higher: strangers
    # elsewhere must not shut the owner out). Past a limit, each further attempt waits twice as long as the last,
    # from LOGIN_BACKOFF_BASE_S up to LOGIN_BACKOFF_MAX_S; counters forget after LOGIN_WINDOW_S without failures.
    login_failures_per_user: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_failures_per_account: int = Field(default=100, ge=1)
    login_window_s: int = Field(default=300, ge=1)
    login_backoff_base_s: float = Field(default=1.0, gt=0)
    login_backoff_max_s: float = Field(default=300.0, gt=0)
    # Proxies in front of this service that append to X-Forwarded-For (load balancer + gateway).
    trusted_proxy_hops: int = Field(default=2, ge=0)
    # The wait for user-service's password check: inside the gateway's budget for a login (4 s), above
    # user-service's own (3 s), so that a busy user-service is its 503, not a timeout.
    user_service_timeout_s: float = Field(default=3.5, gt=0)
    # The wait for a user's token state when a token is verified (inside the verifying service's 1.5 s).
    token_state_timeout_s: float = Field(default=1.0, gt=0)
