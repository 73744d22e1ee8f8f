from pydantic import Field

from titanium_common.addresses import DEFAULT_PORTS, local_url
from titanium_common.db import DatabaseSettings
from titanium_common.revocations import DEFAULT_CHANNEL
from titanium_common.throttling import ClientAddressSettings


class UserSettings(DatabaseSettings, ClientAddressSettings):
    service_name: str = "user-service"
    port: int = DEFAULT_PORTS["user-service"]
    auth_service_url: str = local_url("auth-service")
    # Empty: no cache; reads and writes go to the database and /stats says degraded.
    redis_url: str = ""
    redis_prefix: str = "titanium:user-service:"
    cache_ttl_s: int = Field(default=300, ge=1)
    # Where revoked users are announced to every verify cache (Redis pub/sub on REDIS_URL).
    revocation_channel: str = DEFAULT_CHANNEL
    admin_username: str = ""
    admin_password: str = ""
    admin_email: str = "admin@localhost.localdomain"
    # Registrations per client address: REGISTRATION_BURST at once, then one per REGISTRATION_INTERVAL_S (shared by
    # the replicas through REDIS_URL; without it each replica counts on its own). Past it: 429 with Retry-After.
    registration_burst: int = Field(default=20, ge=1)
    registration_interval_s: float = Field(default=30.0, gt=0)
    # Argon2id cost: about 50 ms per check on the development machine (2 cores); hashes made with other
    # parameters are re-hashed at the next successful login.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=24 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Threads that hash (0: one per core).
    password_workers: int = Field(default=0, ge=0)
    # Time a password check may take here, queue included; one that would take longer is refused at once with 503
    # and Retry-After. Below auth-service's wait for this answer (USER_SERVICE_TIMEOUT_S, 3.5 s).
    credentials_check_budget_s: float = Field(default=3.0, gt=0)
    # The same for the hash of a registration or a password change (inside the gateway's 2 s).
    password_hash_budget_s: float = Field(default=1.5, gt=0)
