from titanium_common.settings import ServiceSettings


class EdgeConfigSettings(ServiceSettings):
    service_name: str = "edge-config"
    port: int = 8005
