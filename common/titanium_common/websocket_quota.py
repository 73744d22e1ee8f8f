"""How many relayed WebSockets a proxy holds open: at most `per_client` for one client and `total` in all, so that
one client cannot take every socket (and with them the upstream's) from everyone else, the dashboard's own live
feed included. Beyond either limit the upgrade gets 503 with Retry-After, before anything is opened upstream."""

import collections
import contextlib
import logging
from collections.abc import Iterator

from aiohttp import web

from .aiohttp_app import json_error
from .settings import ProxyServerSettings

log = logging.getLogger("titanium.websockets")

RETRY_AFTER_S = 5


def client_address(request: web.Request, trusted_proxy_hops: int) -> str:
    """The client as the first trusted proxy saw it: the peer, or with `trusted_proxy_hops` proxies in front (each
    appending its peer to X-Forwarded-For) the entry that many places from the end. Entries before it were written
    by the client and prove nothing."""
    chain = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    chain.append(request.remote or "unknown")
    return chain[-min(trusted_proxy_hops + 1, len(chain))]


class WebSocketQuota:
    """Relayed sockets open now, per client address and in all."""

    def __init__(self, *, per_client: int, total: int, trusted_proxy_hops: int = 0) -> None:
        self.per_client = per_client
        self.total = total
        self.trusted_proxy_hops = trusted_proxy_hops
        self.by_client: collections.Counter[str] = collections.Counter()
        self.open = 0
        self.refused = 0

    def client_of(self, request: web.Request) -> str:
        return client_address(request, self.trusted_proxy_hops)

    def refusal(self, client: str) -> web.Response | None:
        """The 503 for a socket over either limit, or None when `client` may open one more."""
        if self.by_client[client] >= self.per_client:
            why = f"too many open WebSockets from this client (at most {self.per_client})"
        elif self.open >= self.total:
            why = f"too many open WebSockets (at most {self.total})"
        else:
            return None
        self.refused += 1
        log.info("WebSocket refused to %s: %s", client, why)
        return json_error(503, why, {"Retry-After": str(RETRY_AFTER_S)})

    @contextlib.contextmanager
    def held(self, client: str) -> Iterator[None]:
        """Counts a socket of `client` while the block runs."""
        self.by_client[client] += 1
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]

    def snapshot(self) -> dict[str, int]:
        return {
            "open": self.open,
            "clients": len(self.by_client),
            "refused": self.refused,
            "per_client": self.per_client,
            "total": self.total,
        }


def websocket_quota(settings: ProxyServerSettings) -> WebSocketQuota:
    """The quota a proxy's settings configure."""
    return WebSocketQuota(
        per_client=settings.websocket_max_per_client,
        total=settings.websocket_max_total,
        trusted_proxy_hops=settings.trusted_proxy_hops,
    )
