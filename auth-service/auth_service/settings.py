from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL
from titanium_common.throttling import ClientAddressSettings


class AuthSettings(DatabaseSettings, ClientAddressSettings):
    service_name: str = "auth-service"
    port: int = DEFAULT_PORTS["auth-service"]
    user_service_url: str = Field(
        default=local_url("user-service"), description="Where user-service is: it checks passwords and token states."
    )
    jwt_secret: str = Field(
        default="",
        description="The HS256 key of every token. Required outside ENV=development (where a random one is "
        "generated per process, with a warning).",
        json_schema_extra={"shown_default": "none: required outside development"},
    )
    jwt_issuer: str = Field(default="titanium-auth", description="The tokens' `iss`, checked on verify.")
    jwt_ttl_s: int = Field(
        default=900,
        ge=60,
        le=900,
        description="An access token's lifetime: short-lived; a client keeps its session with the refresh token.",
    )
    refresh_token_ttl_s: int = Field(
        default=14 * 24 * 3600, ge=300, le=90 * 24 * 3600, description="A refresh token's lifetime (14 days)."
    )
    redis_url: str = Field(
        default="",
        description="Redis of the failed-login counters and the revocation feed; empty: counters live in this "
        "process only, and verify caches hear no revocations (they keep an answer at most a second).",
    )
    redis_prefix: str = Field(default="titanium:auth-service:", description="auth-service's key prefix in Redis.")
    revocation_channel: str = Field(
        default=DEFAULT_CHANNEL, description="The Redis pub/sub channel where revoked users are announced."
    )
    # Failed logins (auth_service/throttle.py): past a limit, each further attempt from that party waits twice as
    # long as the last; per account over all other clients, a slow-down, never a lock.
    login_failures_per_user: int = Field(
        default=5, ge=1, description="Failed logins per (user, address), or per trusted device, before back-off."
    )
    login_failures_per_address: int = Field(
        default=20, ge=1, description="Failed logins per client address before back-off."
    )
    login_failures_per_account: int = Field(
        default=100,
        ge=1,
        description="Failed logins of one account from all other clients, past which clients the account does not "
        "know get one attempt per `LOGIN_ACCOUNT_INTERVAL_S`.",
    )
    login_window_s: int = Field(
        default=300, ge=1, description="Failure counters forget after this long without failures."
    )
    login_backoff_base_s: float = Field(default=1.0, gt=0, description="The first back-off wait past a limit.")
    login_backoff_max_s: float = Field(default=300.0, gt=0, description="The longest back-off wait.")
    login_account_interval_s: float = Field(
        default=2.0, gt=0, le=60, description="One attempt per this long for clients an attacked account does not know."
    )
    login_known_client_ttl_s: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        description="A client (its address, its device cookie) is known this long after a successful login.",
    )
    user_service_timeout_s: float = Field(
        default=3.5,
        gt=0,
        description="The wait for user-service's password check: inside the gateway's budget for a login (4 s), "
        "above user-service's own (3 s), so that a busy user-service is its 503, not a timeout.",
    )
    token_state_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="The wait for a user's token state when a token is verified (inside the verifying service's "
        "1.5 s).",
    )
