"""An admin deleted or demoted is refused at once by every service that takes admin writes: edge-config's writes,
ops-mcp's `/api/ops/*` and `/mcp`, as auth-, user- and blog-service do (each verify cache hears the revocation
over Redis; none keeps the old answer for its last second)."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from edge_config.main import create_app as create_edge_app
from edge_config.settings import EdgeConfigSettings
from ops_mcp.main import create_app as create_ops_app
from ops_mcp.settings import OpsSettings
from tests.support.identity import ADMIN, identity, identity_settings
from tests.support.polling import eventually
from tests.support.servers import free_port, serving

__all__ = ["identity", "identity_settings"]  # the fixtures this module uses

MCP_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@dataclass
class AdminServices:
    edge_url: str
    ops_url: str
    client: httpx.AsyncClient

    async def statuses(self, token: str) -> dict[str, int]:
        """What an edge write, an ops read and an MCP call answer with this token."""
        auth = {"Authorization": f"Bearer {token}"}
        edge = await self.client.put(f"{self.edge_url}/api/edge/config/rev-1", json={"device_type": "x"}, headers=auth)
        ops = await self.client.get(f"{self.ops_url}/api/ops/edge-devices", headers=auth)
        mcp = await self.client.post(f"{self.ops_url}/mcp", json=MCP_CALL, headers=MCP_HEADERS | auth)
        return {"edge write": edge.status_code, "/api/ops": ops.status_code, "/mcp": mcp.status_code}


@contextlib.asynccontextmanager
async def admin_services(identity, identity_settings, database_target) -> AsyncIterator[AdminServices]:
    """edge-config and ops-mcp beside `identity`'s user- and auth-service, on the same revocation channel."""
    _, auth = identity_settings
    feed = {"redis_url": auth.redis_url, "revocation_channel": auth.revocation_channel}
    edge_settings = EdgeConfigSettings(
        env="test", kube_mode="off", health_interval_s=3600, auth_service_url=identity.auth_url,
        redis_prefix=auth.redis_prefix + "edge:", lease_backend="off", **feed, **database_target.settings(),
    )  # fmt: skip
    edge_app = create_edge_app(edge_settings)
    async with serving(edge_app) as edge_url:
        nowhere = f"http://127.0.0.1:{free_port()}"
        ops_settings = OpsSettings(
            env="test", sample_interval_s=3600, auth_service_url=identity.auth_url, edge_config_url=edge_url,
            load_balancer_url=nowhere, gateway_urls=nowhere, dashboard_urls=nowhere, **feed,
        )  # fmt: skip
        ops_app = create_ops_app(ops_settings)
        async with serving(ops_app) as ops_url:
            # Revocations are heard once the feeds listen (the start of a real run, where they long have).
            feeds = [app.state.verifier.feed for app in (edge_app, ops_app)]
            await eventually(lambda: all(feed.listening or not feed.redis_url for feed in feeds))
            yield AdminServices(edge_url, ops_url, identity.client)


async def second_admin(identity, name: str) -> tuple[int, str, dict[str, str]]:
    """A new admin's id and token, and the first admin's headers (who changes it)."""
    user, _ = await identity.account(name)
    root = {"Authorization": f"Bearer {await identity.token(*ADMIN)}"}
    url = f"{identity.user_url}/api/users/{user['id']}"
    promoted = await identity.client.patch(url, json={"role": "admin"}, headers=root)
    assert promoted.status_code == 200, promoted.text
    return user["id"], await identity.token(name), root


@pytest.mark.parametrize("change", ["deleted", "demoted"])
async def test_a_revoked_admin_is_refused_at_once_on_every_admin_write(
    identity, identity_settings, database_target, change
):
    user_id, token, root = await second_admin(identity, f"boss-{change}")
    async with admin_services(identity, identity_settings, database_target) as services:
        # Each service now holds the admin's verified identity in its cache.
        assert await services.statuses(token) == {"edge write": 200, "/api/ops": 200, "/mcp": 200}
        url = f"{identity.user_url}/api/users/{user_id}"
        if change == "deleted":
            assert (await identity.client.delete(url, headers=root)).status_code == 204
        else:
            assert (await identity.client.patch(url, json={"role": "user"}, headers=root)).status_code == 200
        # A role change ends the user's tokens as a deletion does: the old token is no longer valid at all.
        assert await services.statuses(token) == {"edge write": 401, "/api/ops": 401, "/mcp": 401}
