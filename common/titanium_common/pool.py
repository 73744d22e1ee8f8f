"""Replica pools for the proxy core: pick a healthy replica; eject it when it fails (outlier detection, Envoy's is
the model: connect failures, timeouts and connections dropped before an answer in a row, and, where the pool says
so, 502/503/504 answers in a row); re-admit it as soon as its /health answers again (an unhealthy replica is checked
every fraction of a second); send a request whose connect failed (so nothing of it was sent) once elsewhere, and a
GET, HEAD or OPTIONS that timed out or was dropped before an answer too (as nginx's proxy_next_upstream does). The
load balancer and the gateway share it.

A member given by host name (a headless Service in Kubernetes, a scaled Compose service) is resolved every
`resolve_interval_s`, and every address it resolves to is a replica with its own health and ejection (Envoy's
STRICT_DNS cluster): so a balancer spreads requests per request over a service's pods, instead of pinning one
keep-alive connection to whichever pod a ClusterIP picked. A failed or empty resolution keeps the last addresses;
until the first one succeeds, the name itself is the replica.
"""

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, MutableSet
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from .aiohttp_app import CLIENT, PROXIED_TO, json_error
from .loops import raise_if_cancelling, stop_tasks
from .proxy import BODY_READ_TIMEOUT_S, LimitedBody, body_too_large, forward_http, proxy_websocket
from .settings import ProxyServerSettings
from .upstream_client import UpstreamBroken, UpstreamClient, UpstreamTimeout, UpstreamUnreachable
from .websocket_quota import WebSocketQuota

log = logging.getLogger("titanium.pool")

Strategy = Literal["least-outstanding", "round-robin"]
# Requests that change nothing: sent again on another replica when the first gave no answer.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# (host, port) → the addresses it resolves to, in the resolver's order.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6), each once, in getaddrinfo's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Replica:
    __slots__ = (
        "changed_at",
        "check_started_at",
        "checking",
        "connect_failures",
        "consecutive_5xx",
        "consecutive_failures",
        "ejected_until",
        "ejections",
        "failed_checks",
        "healthy",
        "last_check_at",
        "last_error",
        "member",
        "outstanding",
        "requests",
        "url",
    )

    def __init__(self, url: str, member: str | None = None) -> None:
        self.url = url.rstrip("/")
        # The configured entry this replica comes from (a DNS name's addresses share it).
        self.member = member or self.url
        # Optimistic at start: the first requests need not wait for the first health check.
        self.healthy = True
        self.outstanding = 0
        self.requests = 0
        self.connect_failures = 0
        # Connect failures, timeouts and connections dropped before an answer, in a row.
        self.consecutive_failures = 0
        # 502/503/504 answers in a row.
        self.consecutive_5xx = 0
        # Ejections for 5xx answers since the replica last answered well; each holds it out twice as long.
        self.ejections = 0
        # An ejected replica is not re-admitted before this (time.monotonic()), whatever its checks say.
        self.ejected_until = 0.0
        self.failed_checks = 0
        self.checking = False
        self.check_started_at = time.monotonic()
        self.last_error: str | None = None
        self.last_check_at: float | None = None
        self.changed_at = time.time()

    def snapshot(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "member": self.member,
            "healthy": self.healthy,
            "outstanding": self.outstanding,
            "requests": self.requests,
            "connect_failures": self.connect_failures,
            "ejections": self.ejections,
            "last_error": self.last_error,
            "last_check_at": self.last_check_at,
            "health_changed_at": self.changed_at,
        }


class DnsMember:
    """A pool entry whose host is a name: its current replicas, one per address."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.replicas = [Replica(self.url)]
        self.addresses: list[str] = []
        self.resolved_at: float | None = None
        self.error: str | None = None

    def address_url(self, address: str) -> str:
        host = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{host}:{self.port}"

    def update(self, addresses: list[str]) -> tuple[list[str], list[str]]:
        """Take the resolved addresses; a replica whose address stays keeps its health. Returns (added, removed)."""
        before = {r.url: r for r in self.replicas}
        urls = [self.address_url(a) for a in addresses]
        self.replicas = [before.get(url) or Replica(url, self.url) for url in urls]
        self.addresses = addresses
        self.resolved_at = time.time()
        self.error = None
        return [u for u in urls if u not in before], [u for u in before if u not in urls]

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.url, "addresses": self.addresses, "resolved_at": self.resolved_at, "error": self.error}


class ReplicaPool:
    """Several URLs for one upstream. Health: active GET `health_path` every `check_interval_s`, every
    `unhealthy_check_interval_s` while a replica is out (unhealthy after `unhealthy_after_checks` failed checks in a
    row, healthy again after one good one); passive ejection (outlier detection) after `eject_after_failures`
    connect failures, timeouts or connections dropped before an answer in a row, and after `eject_after_5xx`
    502/503/504 answers in a row (0: never), which holds the replica out for `ejection_s` at least, doubled for each
    such ejection in a row up to `max_ejection_s` (its /health may answer while its requests fail), and never
    ejects the last healthy replica (its answers are then the best there is). A plain-HTTP member whose host is a
    name is resolved every `resolve_interval_s` by `resolver`, each address a replica (HTTPS members stay by name:
    certificates name hosts, not addresses)."""

    def __init__(
        self,
        name: str,
        urls: Iterable[str],
        *,
        strategy: Strategy = "least-outstanding",
        eject_after_failures: int = 3,
        eject_after_5xx: int = 0,
        ejection_s: float = 5.0,
        max_ejection_s: float = 60.0,
        health_path: str = "/health",
        check_interval_s: float = 3.0,
        unhealthy_check_interval_s: float = 0.25,
        check_timeout_s: float = 2.0,
        unhealthy_after_checks: int = 2,
        resolve_interval_s: float = 5.0,
        resolver: Resolver = resolve_addresses,
    ) -> None:
        self.name = name
        # Entries in the configured order: a fixed Replica, or a DnsMember whose replicas follow its name.
        self.members: list[Replica | DnsMember] = []
        for url in urls:
            host = urlsplit(url).hostname or ""
            dynamic = urlsplit(url).scheme == "http" and host and not _is_ip(host)
            self.members.append(DnsMember(url) if dynamic else Replica(url))
        if not self.members:
            raise ValueError(f"pool {name} has no replica URL")
        self.replicas: list[Replica] = []
        self._rebuild()
        self.resolve_interval_s = resolve_interval_s
        self.resolver = resolver
        self._resolver_task: asyncio.Task | None = None
        self.strategy = strategy
        self.eject_after_failures = eject_after_failures
        self.eject_after_5xx = eject_after_5xx
        self.ejection_s = ejection_s
        self.max_ejection_s = max_ejection_s
        self.health_path = health_path
        self.check_interval_s = check_interval_s
        self.unhealthy_check_interval_s = unhealthy_check_interval_s
        self.check_timeout_s = check_timeout_s
        self.unhealthy_after_checks = unhealthy_after_checks
        self._next = 0
        self._checker: asyncio.Task | None = None
        self._checks: set[asyncio.Task] = set()

    def _rebuild(self) -> None:
        replicas: list[Replica] = []
        for member in self.members:
            replicas.extend(member.replicas if isinstance(member, DnsMember) else (member,))
        self.replicas = replicas

    @property
    def dns_members(self) -> list[DnsMember]:
        return [m for m in self.members if isinstance(m, DnsMember)]

    async def resolve(self) -> None:
        """Resolve every named member once (in parallel); a failure keeps that member's last addresses."""
        members = self.dns_members
        answers = await asyncio.gather(*(self.resolver(m.host, m.port) for m in members), return_exceptions=True)
        for member, answer in zip(members, answers, strict=True):
            if isinstance(answer, BaseException) or not answer:
                member.error = f"resolving {member.host} failed: {answer or 'no address'}"
                log.warning("%s: %s; keeping %s", self.name, member.error, [r.url for r in member.replicas])
                continue
            added, removed = member.update(answer)
            if added or removed:
                log.info("%s: %s resolves to %s (added %s, removed %s)", self.name, member.host, answer, added, removed)
        self._rebuild()

    async def _resolve_forever(self) -> None:
        while True:
            try:
                await self.resolve()
            except Exception:  # the resolver must outlive any surprise; the next round tries again
                raise_if_cancelling()
                log.exception("resolving the members of %s failed", self.name)
            await asyncio.sleep(self.resolve_interval_s)

    @property
    def healthy_count(self) -> int:
        return sum(r.healthy for r in self.replicas)

    def pick(self, exclude: Replica | None = None) -> Replica | None:
        """A healthy replica (not `exclude`), or None when there is none."""
        replicas = self.replicas
        n = len(replicas)
        if n == 1:
            only = replicas[0]
            return only if only.healthy and only is not exclude else None
        start = self._next
        self._next = (start + 1) % n
        best: Replica | None = None
        # Rotating the starting point spreads ties (and is plain round-robin when the strategy says so).
        for i in range(n):
            replica = replicas[(start + i) % n]
            if not replica.healthy or replica is exclude:
                continue
            if self.strategy == "round-robin":
                return replica
            if best is None or replica.outstanding < best.outstanding:
                best = replica
        return best

    def connect_failed(self, replica: Replica, error: str) -> None:
        """Connecting to `replica` failed: nothing of the request was sent."""
        replica.connect_failures += 1
        self.request_failed(replica, error)

    def request_failed(self, replica: Replica, error: str) -> None:
        """`replica` gave no answer: it could not be reached, timed out, or dropped the connection. Its /health says
        when it is back, so it is re-admitted at its first good check."""
        replica.consecutive_failures += 1
        replica.last_error = error
        if replica.healthy and replica.consecutive_failures >= self.eject_after_failures:
            self._set_health(replica, False, f"{replica.consecutive_failures} failures in a row: {error}")

    def answered(self, replica: Replica, status: int) -> None:
        """`replica` answered with `status`."""
        replica.consecutive_failures = 0
        if status not in (502, 503, 504):
            replica.consecutive_5xx = replica.ejections = 0
            return
        replica.consecutive_5xx += 1
        replica.last_error = f"answered HTTP {status}"
        if (
            self.eject_after_5xx
            and replica.healthy
            and replica.consecutive_5xx >= self.eject_after_5xx
            and self.healthy_count > 1
        ):
            hold_s = min(self.ejection_s * 2**replica.ejections, self.max_ejection_s)
            replica.ejections += 1
            replica.ejected_until = time.monotonic() + hold_s
            self._set_health(
                replica, False, f"{replica.consecutive_5xx} answers 502/503/504 in a row; out for {hold_s:g} s at least"
            )

    def _set_health(self, replica: Replica, healthy: bool, why: str) -> None:
        replica.healthy = healthy
        replica.changed_at = time.time()
        if healthy:
            replica.consecutive_failures = replica.consecutive_5xx = 0
            replica.failed_checks = 0
            log.info("%s replica %s re-admitted: %s", self.name, replica.url, why)
        else:
            log.warning("%s replica %s ejected: %s", self.name, replica.url, why)

    async def check(self, session: aiohttp.ClientSession, replica: Replica) -> None:
        """One active health check of one replica."""
        error: str | None = None
        replica.checking = True
        replica.check_started_at = time.monotonic()
        try:
            timeout = aiohttp.ClientTimeout(total=self.check_timeout_s)
            async with session.get(replica.url + self.health_path, timeout=timeout) as answer:
                await answer.read()
                if answer.status != 200:
                    error = f"{self.health_path} answered HTTP {answer.status}"
        except TimeoutError:
            error = f"{self.health_path} timed out after {self.check_timeout_s} s"
        except aiohttp.ClientError as exc:
            error = f"{self.health_path} failed: {exc}"
        finally:
            replica.checking = False
        replica.last_check_at = time.time()
        if error is None:
            if not replica.healthy and time.monotonic() >= replica.ejected_until:
                self._set_health(replica, True, f"{self.health_path} answered 200")
            replica.failed_checks = 0
            return
        replica.last_error = error
        replica.failed_checks += 1
        if replica.healthy and replica.failed_checks >= self.unhealthy_after_checks:
            self._set_health(replica, False, error)

    async def check_all(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self.check(session, r) for r in self.replicas))

    def _due(self, replica: Replica, now: float) -> bool:
        interval = self.check_interval_s if replica.healthy else self.unhealthy_check_interval_s
        return not replica.checking and now - replica.check_started_at >= interval

    async def _check_one(self, session: aiohttp.ClientSession, replica: Replica) -> None:
        try:
            await self.check(session, replica)
        except Exception:  # the checker must outlive any surprise; the next round tries again
            raise_if_cancelling()
            log.exception("health check of %s replica %s failed", self.name, replica.url)

    async def _check_forever(self, session: aiohttp.ClientSession) -> None:
        """Each replica is checked when it is due, on its own (a check that waits for a stalled replica holds up no
        other): a healthy one every `check_interval_s`, one that is out every `unhealthy_check_interval_s`."""
        tick_s = min(self.check_interval_s, self.unhealthy_check_interval_s)
        while True:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            for replica in self.replicas:
                if self._due(replica, now):
                    task = asyncio.create_task(self._check_one(session, replica))
                    self._checks.add(task)
                    task.add_done_callback(self._checks.discard)

    def start(self, session: aiohttp.ClientSession) -> None:
        if self._checker is None:
            self._checker = asyncio.create_task(self._check_forever(session), name=f"health-{self.name}")
        self.start_resolving()

    def start_resolving(self) -> None:
        """Only follow the named members' addresses (a pool that is read, not balanced over: no health checks)."""
        if self._resolver_task is None and self.dns_members:
            self._resolver_task = asyncio.create_task(self._resolve_forever(), name=f"resolve-{self.name}")

    async def stop(self) -> None:
        await stop_tasks((self._checker, self._resolver_task, *self._checks))
        self._checker = self._resolver_task = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "healthy": self.healthy_count,
            "members": [r.snapshot() for r in self.replicas],
            **({"dns": [m.snapshot() for m in self.dns_members]} if self.dns_members else {}),
        }


def replica_pool(name: str, urls: Iterable[str], settings: ProxyServerSettings) -> ReplicaPool:
    """A pool as a proxy's settings configure it (the same health, ejection and DNS settings in both proxies)."""
    return ReplicaPool(
        name,
        urls,
        strategy=settings.balance_strategy,
        eject_after_failures=settings.eject_after_failures,
        eject_after_5xx=settings.eject_after_5xx,
        ejection_s=settings.ejection_s,
        max_ejection_s=settings.max_ejection_s,
        check_interval_s=settings.health_check_interval_s,
        unhealthy_check_interval_s=settings.unhealthy_check_interval_s,
        check_timeout_s=settings.health_check_timeout_s,
        unhealthy_after_checks=settings.unhealthy_after_checks,
        resolve_interval_s=settings.dns_refresh_interval_s,
    )


def attach_pools(
    app: web.Application, pools: Iterable[ReplicaPool], *, resolve_only: Iterable[ReplicaPool] = ()
) -> None:
    """Run the pools' health checks on `app[CLIENT]` while the app runs (call after attach_client_session);
    `resolve_only` pools just follow their named members' addresses."""
    pools, resolve_only = list(pools), list(resolve_only)

    async def lifetime(app: web.Application):
        for pool in pools:
            pool.start(app[CLIENT])
        for pool in resolve_only:
            pool.start_resolving()
        yield
        await asyncio.gather(*(pool.stop() for pool in (*pools, *resolve_only)))

    app.cleanup_ctx.append(lifetime)


def _no_healthy_replica(pool: ReplicaPool) -> web.Response:
    return json_error(503, f"upstream {pool.name} has no healthy replica", {"Retry-After": "1"})


async def websocket_to_pool(
    request: web.Request,
    session: aiohttp.ClientSession,
    pool: ReplicaPool,
    *,
    open_sockets: MutableSet[web.WebSocketResponse] | None = None,
    quota: WebSocketQuota | None = None,
) -> web.StreamResponse:
    """proxy_websocket to a healthy replica; 503 at once with none, as for plain requests, and (with a `quota`) for
    a client over its share of relayed sockets."""
    if quota is None:
        client = None
    else:
        client = quota.client_of(request)
        refused = quota.refusal(client)
        if refused is not None:
            return refused
    replica = pool.pick()
    if replica is None:
        return _no_healthy_replica(pool)
    if client is None:
        return await proxy_websocket(request, session, pool.name, replica.url, open_sockets=open_sockets)
    with quota.held(client):
        return await proxy_websocket(request, session, pool.name, replica.url, open_sockets=open_sockets)


async def proxy_to_pool(
    request: web.Request,
    client: UpstreamClient,
    pool: ReplicaPool,
    *,
    max_body_bytes: int,
    body_read_timeout_s: float = BODY_READ_TIMEOUT_S,
) -> web.StreamResponse:
    """Forward one HTTP request to a healthy replica and stream the answer back: 503 at once with none, 502 when
    it cannot be reached, 504 when it does not answer in time. A request whose connect failed, so that nothing of it
    was sent, is tried once more on another replica, whatever its method (as nginx's and Envoy's connect-failure
    retries): a replica that is dying costs no POST. A GET, HEAD or OPTIONS that timed out or was dropped before an
    answer is tried once more elsewhere too (it changes nothing); any other request that was sent is never sent
    again: the replica may have acted on it. Every outcome feeds the pool's outlier detection."""
    refused = body_too_large(request, max_body_bytes)
    if refused is not None:
        return refused
    replica = pool.pick()
    if replica is None:
        return _no_healthy_replica(pool)
    body = LimitedBody(request, max_body_bytes, body_read_timeout_s) if request.body_exists else None
    safe = request.method in SAFE_METHODS
    retried = False
    while True:
        replica.outstanding += 1
        replica.requests += 1
        request[PROXIED_TO] = (pool.name, replica.url)
        try:
            response = await forward_http(request, client, pool.name, replica.url, body)
        except UpstreamUnreachable as exc:
            pool.connect_failed(replica, str(exc))
            failure, why, may_retry = json_error(502, f"upstream {pool.name} unavailable: {exc}"), "unreachable", True
        except UpstreamTimeout as exc:
            pool.request_failed(replica, str(exc))
            failure, why, may_retry = json_error(504, f"upstream {pool.name} timed out"), "timed out", safe
        except UpstreamBroken as exc:
            pool.request_failed(replica, str(exc))
            failure, why, may_retry = json_error(502, f"upstream {pool.name} failed: {exc}"), "failed", safe
        else:
            pool.answered(replica, response.status)
            return response
        finally:
            replica.outstanding -= 1
        retry = None
        replayable = body is None or not body.started or body.payload is not None
        if may_retry and not retried and replayable:
            retry = pool.pick(exclude=replica)
        if retry is None:
            return failure
        log.info("%s: %s %s, %s %s retried on %s", pool.name, replica.url, why, request.method, request.path, retry.url)
        retried = True
        replica = retry
