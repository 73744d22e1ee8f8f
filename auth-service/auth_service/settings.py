from pydantic import Field

from titanium_common.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    service_name: str = "auth-service"
    port: int = 8001
    user_service_url: str = "http://127.0.0.1:8002"
    # Required outside ENV=development (where a random one is generated per process, with a warning).
    jwt_secret: str = ""
    jwt_issuer: str = "titanium-auth"
    jwt_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # Empty: failed-login counters live in this process only.
    redis_url: str = ""
    redis_prefix: str = "titanium:auth-service:"
    login_failures_per_user: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_window_s: int = Field(default=300, ge=1)
    # Proxies in front of this service that append to X-Forwarded-For (load balancer + gateway).
    trusted_proxy_hops: int = Field(default=2, ge=0)
