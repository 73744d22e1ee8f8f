from titanium_common.settings import ServiceSettings


class UserSettings(ServiceSettings):
    service_name: str = "user-service"
    port: int = 8002
