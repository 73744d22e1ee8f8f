from titanium_common.settings import ServiceSettings


class AuthSettings(ServiceSettings):
    service_name: str = "auth-service"
    port: int = 8001
    user_service_url: str = "http://127.0.0.1:8002"
