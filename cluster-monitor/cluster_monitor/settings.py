from titanium_common.settings import ServiceSettings


class ClusterMonitorSettings(ServiceSettings):
    service_name: str = "cluster-monitor"
    port: int = 8004
