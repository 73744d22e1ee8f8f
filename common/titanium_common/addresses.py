"""Where each service listens by default, and the addresses the others reach it at on one machine (`make run`,
tests). Every settings class takes its defaults from here; a deployment sets the real addresses (Compose and the
manifests name services by host)."""

from .settings import ServiceSettings

DEFAULT_PORTS: dict[str, int] = {
    "load-balancer": 7100,
    "api-gateway": 8000,
    "auth-service": 8001,
    "user-service": 8002,
    "blog-service": 8003,
    "cluster-monitor": 8004,
    "edge-config": 8005,
    "ops-mcp": 8006,
    "dashboard-ui": 8080,
}


def local_url(service: str) -> str:
    """The default address of `service` on this machine."""
    return f"http://127.0.0.1:{DEFAULT_PORTS[service]}"


class ServiceAddresses(ServiceSettings):
    """The addresses of the services that every overview of the suite calls (the proxies and ops-mcp): a settings
    class takes this as a second base, next to its own."""

    auth_service_url: str = local_url("auth-service")
    user_service_url: str = local_url("user-service")
    blog_service_url: str = local_url("blog-service")
    cluster_monitor_url: str = local_url("cluster-monitor")
    edge_config_url: str = local_url("edge-config")
