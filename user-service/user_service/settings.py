from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL
from titanium_common.throttling import ClientAddressSettings


class UserSettings(DatabaseSettings, ClientAddressSettings):
    service_name: str = "user-service"
    port: int = DEFAULT_PORTS["user-service"]
    auth_service_url: str = Field(default=local_url("auth-service"), description="Where auth-service verifies tokens.")
    redis_url: str = Field(
        default="",
        description="Redis of the registration limit, revocations and, with PostgreSQL, where the user cache's "
        "replicas share what changed (empty with PostgreSQL: no user cache, and `/stats` says degraded).",
    )
    redis_prefix: str = Field(default="titanium:user-service:", description="user-service's key prefix in Redis.")
    user_cache_max_age_s: float = Field(
        default=5.0, ge=0, description="How long the user cache keeps a read answer at most (0: no cache)."
    )
    user_cache_entries: int = Field(
        default=4096,
        ge=0,
        description="How many answers the user cache keeps (a user has up to two: as anyone sees it, and as the "
        "user themself or an admin does).",
    )
    revocation_channel: str = Field(
        default=DEFAULT_CHANNEL,
        description="Where revoked users are announced to every verify cache (Redis pub/sub on `REDIS_URL`).",
    )
    admin_username: str = Field(
        default="",
        description="The admin created at start-up (an account of that name is kept as it is); empty: none.",
    )
    admin_password: str = Field(default="", description="That admin's password.")
    admin_email: str = Field(
        default="admin@localhost.localdomain",
        description="That admin's e-mail; one another account has stops the start-up, saying so.",
    )
    # Registrations per client address are shared by the replicas through REDIS_URL; without it each replica
    # counts on its own. Past it: 429 with Retry-After.
    registration_burst: int = Field(default=20, ge=1, description="Registrations per client address at once.")
    registration_interval_s: float = Field(
        default=30.0, gt=0, description="Past the burst, one registration per client address per this long."
    )
    # Argon2id cost: about 50 ms per check on the development machine (2 cores); hashes made with other
    # parameters are re-hashed at the next successful login.
    argon2_time_cost: int = Field(default=2, ge=1, description="Argon2id's passes over memory.")
    argon2_memory_kib: int = Field(default=24 * 1024, ge=8 * 1024, description="Argon2id's memory per hash, KiB.")
    argon2_parallelism: int = Field(default=1, ge=1, description="Argon2id's lanes.")
    password_workers: int = Field(default=0, ge=0, description="Threads that hash (0: one per core).")
    credentials_check_budget_s: float = Field(
        default=3.0,
        gt=0,
        description="Time a password check may take here, queue included; one that would take longer is refused "
        "at once with 503 and Retry-After. Below auth-service's wait for this answer (3.5 s).",
    )
    password_hash_budget_s: float = Field(
        default=1.5,
        gt=0,
        description="The same for the hash of a registration or a password change (inside the gateway's 2 s).",
    )
