from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL
from titanium_common.throttling import ClientAddressSettings


class AuthSettings(DatabaseSettings, ClientAddressSettings):
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
    # Failed logins (auth_service/throttle.py): per (user, address) or per trusted device, and per address: past a
    # limit, each further attempt from that party waits twice as long as the last, from LOGIN_BACKOFF_BASE_S up to
    # LOGIN_BACKOFF_MAX_S; counters forget after LOGIN_WINDOW_S without failures. Per account over all other
    # clients: past LOGIN_FAILURES_PER_ACCOUNT, clients the account does not know get one attempt per
    # LOGIN_ACCOUNT_INTERVAL_S (a slow-down, never a lock). A client is known for LOGIN_KNOWN_CLIENT_TTL_S after a
    # successful login (its address, and its device cookie).
    login_failures_per_user: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_failures_per_account: int = Field(default=100, ge=1)
    login_window_s: int = Field(default=300, ge=1)
    login_backoff_base_s: float = Field(default=1.0, gt=0)
    login_backoff_max_s: float = Field(default=300.0, gt=0)
    login_account_interval_s: float = Field(default=2.0, gt=0, le=60)
    login_known_client_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    # The wait for user-service's password check: inside the gateway's budget for a login (4 s), above
    # user-service's own (3 s), so that a busy user-service is its 503, not a timeout.
    user_service_timeout_s: float = Field(default=3.5, gt=0)
    # The wait for a user's token state when a token is verified (inside the verifying service's 1.5 s).
    token_state_timeout_s: float = Field(default=1.0, gt=0)
