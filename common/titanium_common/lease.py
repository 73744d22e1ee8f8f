"""A lease: one replica at a time does the work that must happen once (collect, probe, sync), the others read.

The holder renews every `ttl_s / 3`; the others try to take it at the same pace, so when the holder dies another
takes over within about `ttl_s + ttl_s / 3` (at once on a graceful stop, which releases it). Two stores:
- `KubernetesLeaseStore`: a `coordination.k8s.io/v1` Lease (the object client-go's leader election uses), read and
  replaced with its resourceVersion, so two contenders cannot both win;
- `RedisLeaseStore`: a key set only if absent, renewed only by its holder (one Lua script), with a TTL.
The Kubernetes Lease lives in the cluster the replica runs in (its pod's service account, through
titanium_common.kube); outside a pod `LEASE_BACKEND=kubernetes` uses the kubeconfig's current context.
Without a store (one replica, no Redis) the replica holds it alone. When the store cannot be reached the replica
works alone too ("mode": "alone") rather than leave the work undone; it rejoins the lease when the store answers.
"""

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from .loops import raise_if_cancelling, stop_tasks
from .settings import ServiceSettings

if TYPE_CHECKING:  # kubernetes_asyncio (the kit's `kubernetes` extra) is imported only once a lease is opened
    from .kube import KubeConnection

log = logging.getLogger("titanium.lease")

Mode = Literal["holder", "follower", "alone"]


class LeaseSettings(ServiceSettings):
    """What a service with a lease reads (mix into its settings class)."""

    lease_backend: Literal["auto", "kubernetes", "redis", "off"] = Field(
        default="auto",
        description="Who holds the lease, and so does the one-replica work: auto is a Kubernetes Lease when "
        "running in a pod with a service account, else a Redis lock when `REDIS_URL` is set, else this replica "
        "alone.",
    )
    lease_name: str = Field(default="", description="The lease's name; empty: the service's name.")
    lease_ttl_s: float = Field(
        default=6.0, ge=1.0, description="How long a lease lasts unrenewed (a dead holder's is taken after it)."
    )
    lease_namespace: str = Field(
        default="",
        description="The Lease's namespace in Kubernetes; empty: the pod's own namespace (outside a pod, the "
        "kubeconfig context's, else `default`).",
    )
    redis_url: str = Field(default="", description="The Redis of the lease lock (and of the shared figures).")
    replica_name: str = Field(
        default="",
        description="This replica's identity in the lease and in figures; empty: host name and port (a pod's "
        "host name is its name).",
    )

    @property
    def replica_id(self) -> str:
        return self.replica_name or f"{socket.gethostname()}:{self.port}"


class LeaseStore(Protocol):
    where: str

    async def acquire(self, name: str, holder: str, ttl_s: float) -> str | None:
        """Take or renew the lease for `holder`; the holder afterwards (us or another), None if nobody."""

    async def release(self, name: str, holder: str) -> None: ...

    async def close(self) -> None: ...


_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if not current or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return current
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLeaseStore:
    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as redis

        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.prefix = prefix
        self.where = "redis"
        self._acquire = self.client.register_script(_ACQUIRE)
        self._release = self.client.register_script(_RELEASE)

    async def acquire(self, name: str, holder: str, ttl_s: float) -> str | None:
        answer = await self._acquire(keys=[f"{self.prefix}lease:{name}"], args=[holder, int(ttl_s * 1000)])
        return answer.decode() if isinstance(answer, bytes) else answer

    async def release(self, name: str, holder: str) -> None:
        await self._release(keys=[f"{self.prefix}lease:{name}"], args=[holder])

    async def close(self) -> None:
        await self.client.aclose()


class KubernetesLeaseStore:
    """A coordination.k8s.io/v1 Lease in `namespace` (else the connection's); needs get, create and update on
    leases (RBAC). The store closes the connection when it closes."""

    def __init__(self, connection: "KubeConnection", namespace: str = "") -> None:
        from kubernetes_asyncio import client

        self.models = client
        self.api = client.CoordinationV1Api(connection.api_client)
        self.connection = connection
        self.namespace = namespace or connection.namespace
        self.where = f"kubernetes lease in {self.namespace}"

    async def acquire(self, name: str, holder: str, ttl_s: float) -> str | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        now = datetime.now(UTC)
        duration = math.ceil(ttl_s)
        try:
            lease = await self.api.read_namespaced_lease(name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            spec = self.models.V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=duration,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            )
            body = self.models.V1Lease(metadata=self.models.V1ObjectMeta(name=name), spec=spec)
            try:
                await self.api.create_namespaced_lease(self.namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:  # another replica created it first
                    return await self._holder(name)
                raise
            return holder
        spec = lease.spec
        if spec.holder_identity != holder:
            renewed = spec.renew_time or spec.acquire_time
            expires = renewed + timedelta(seconds=spec.lease_duration_seconds or duration) if renewed else None
            if spec.holder_identity and expires is not None and expires > now:
                return spec.holder_identity
            spec.holder_identity = holder
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.renew_time = now
        spec.lease_duration_seconds = duration
        try:
            # The read's resourceVersion goes back with it: a concurrent writer makes this a 409, never two holders.
            await self.api.replace_namespaced_lease(name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                return await self._holder(name)
            raise
        return holder

    async def _holder(self, name: str) -> str | None:
        lease = await self.api.read_namespaced_lease(name, self.namespace)
        return lease.spec.holder_identity

    async def release(self, name: str, holder: str) -> None:
        lease = await self.api.read_namespaced_lease(name, self.namespace)
        if lease.spec.holder_identity == holder:
            # An expired renewTime hands it over at the next attempt of another replica.
            lease.spec.renew_time = datetime.now(UTC) - timedelta(seconds=lease.spec.lease_duration_seconds or 1)
            lease.spec.holder_identity = ""
            await self.api.replace_namespaced_lease(name, self.namespace, lease)

    async def close(self) -> None:
        await self.connection.close()


class Lease:
    """`is_holder` says whether this replica does the once-only work now; `on_change(mode)` is told every change."""

    def __init__(self, store: LeaseStore | None, name: str, holder: str, ttl_s: float = 6.0) -> None:
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self.mode: Mode = "alone" if store is None else "follower"
        self.current_holder: str | None = holder if store is None else None
        self.problem: str | None = None
        self.changes = 0
        self.listeners: list[Callable[[Mode], None]] = []
        self._task: asyncio.Task | None = None

    @property
    def is_holder(self) -> bool:
        return self.mode != "follower"

    def _set(self, mode: Mode) -> None:
        if mode == self.mode:
            return
        log.info("lease %s: %s -> %s (%s)", self.name, self.mode, mode, self.problem or self.current_holder)
        self.mode = mode
        self.changes += 1
        for listener in self.listeners:
            listener(mode)

    async def attempt(self) -> Mode:
        """One acquire-or-renew; never raises."""
        if self.store is None:
            return self.mode
        try:
            async with asyncio.timeout(self.ttl_s / 3):
                self.current_holder = await self.store.acquire(self.name, self.holder, self.ttl_s)
        except Exception as exc:  # an unreachable store: work alone rather than leave the work undone
            raise_if_cancelling()
            self.problem = f"{self.store.where} failed: {type(exc).__name__}: {exc}"[:300]
            self._set("alone")
            return self.mode
        self.problem = None
        if self.current_holder == self.holder:
            self._set("holder")
        else:
            self._set("follower")
        return self.mode

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            await self.attempt()

    async def start(self) -> None:
        await self.attempt()
        if self.store is not None and self._task is None:
            self._task = asyncio.create_task(self._keep(), name=f"lease-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None
        if self.store is not None:
            if self.mode == "holder":
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await self.store.release(self.name, self.holder)
            await self.store.close()

    async def store_answers(self) -> bool:
        """False while the store could not be reached at the last attempt (no store: nothing to reach)."""
        return self.store is None or self.problem is None

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "store": self.store.where if self.store is not None else "none (one replica)",
            "replica": self.holder,
            "mode": self.mode,
            "holder": self.current_holder,
            "ttl_s": self.ttl_s,
            "changes": self.changes,
            "problem": self.problem,
        }


async def open_lease(settings: LeaseSettings, *, redis_prefix: str) -> Lease:
    """The lease the settings ask for. A Kubernetes configuration that cannot be loaded raises
    titanium_common.kube.KubeConfigError (LEASE_BACKEND=kubernetes asks for one)."""
    from .kube import connect, in_pod

    name = settings.lease_name or settings.service_name
    backend = settings.lease_backend
    if backend == "auto":
        backend = "kubernetes" if in_pod() else "redis" if settings.redis_url else "off"
    store: LeaseStore | None = None
    if backend == "kubernetes":
        # The Lease belongs to the cluster the replica runs in, even when the service works on others (a
        # kubeconfig); a request must end within one attempt.
        connection = await connect(mode="in-cluster" if in_pod() else "kubeconfig", timeout_s=settings.lease_ttl_s / 3)
        store = KubernetesLeaseStore(connection, settings.lease_namespace)
    elif backend == "redis":
        if not settings.redis_url:
            raise ValueError("LEASE_BACKEND=redis needs REDIS_URL")
        store = RedisLeaseStore(settings.redis_url, redis_prefix)
    return Lease(store, name, settings.replica_id, settings.lease_ttl_s)
