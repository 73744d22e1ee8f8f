from titanium_common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "api-gateway"
    port: int = 8000
    auth_service_url: str = "http://127.0.0.1:8001"
    user_service_url: str = "http://127.0.0.1:8002"
    blog_service_url: str = "http://127.0.0.1:8003"
    cluster_monitor_url: str = "http://127.0.0.1:8004"
    edge_config_url: str = "http://127.0.0.1:8005"
    max_body_bytes: int = 10 * 1024 * 1024

    def route_table(self) -> dict[str, tuple[str, str]]:
        """Public path prefix → (upstream name, base URL): DESIGN.md section 1."""
        auth = ("auth-service", self.auth_service_url)
        users = ("user-service", self.user_service_url)
        blog = ("blog-service", self.blog_service_url)
        cluster = ("cluster-monitor", self.cluster_monitor_url)
        edge = ("edge-config", self.edge_config_url)
        return {
            "/api/auth": auth,
            "/api/login": auth,
            "/api/users": users,
            "/api/register": users,
            "/api/posts": blog,
            "/blog": blog,
            "/api/clusters": cluster,
            "/api/nodes": cluster,
            "/api/pods": cluster,
            "/api/namespaces": cluster,
            "/api/deployments": cluster,
            "/api/events": cluster,
            "/ws/clusters": cluster,
            "/api/edge": edge,
        }
