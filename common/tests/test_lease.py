"""The lease helper against a real Redis (a key prefix of the test's own) and the real kubernetes_asyncio client
against the Kubernetes API double: one holder at a time, takeover after the holder's death, release on stop."""

import asyncio
import time

import kubernetes_asyncio

from tests.support.servers import free_port
from titanium_common.lease import KubernetesLeaseStore, Lease, LeaseSettings, RedisLeaseStore, open_lease

TTL_S = 1.5


def die(lease: Lease) -> None:
    """As SIGKILL would: renewals stop, nothing is released."""
    lease._task.cancel()


async def wait_mode(lease: Lease, mode: str, timeout_s: float) -> float:
    started = time.monotonic()
    for _ in range(int(timeout_s / 0.05)):
        if lease.mode == mode:
            break
        await asyncio.sleep(0.05)
    assert lease.mode == mode, lease.snapshot()
    return time.monotonic() - started


async def contend(store_a, store_b) -> None:
    a = Lease(store_a, "collector", "replica-a", TTL_S)
    b = Lease(store_b, "collector", "replica-b", TTL_S)
    await a.start()
    await b.start()
    try:
        assert (a.mode, b.mode) == ("holder", "follower")
        assert b.current_holder == "replica-a"
        await asyncio.sleep(TTL_S * 1.5)  # renewals keep it: no flapping
        assert (a.mode, b.mode) == ("holder", "follower")
        die(a)
        took = await wait_mode(b, "holder", TTL_S * 2 + 1)
        assert took <= TTL_S + TTL_S / 3 + 0.5
        # The dead one, back, finds it taken.
        assert await a.attempt() == "follower"
        assert a.current_holder == "replica-b"
        # A graceful stop releases it: the other takes it at its next attempt, not after the TTL.
        a._task = None
        await b.stop()
        assert await a.attempt() == "holder"
    finally:
        await a.stop()


async def test_redis_lease_one_holder_takeover_and_release(redis_target):
    await contend(
        RedisLeaseStore(redis_target.url, redis_target.prefix), RedisLeaseStore(redis_target.url, redis_target.prefix)
    )


async def test_kubernetes_lease_one_holder_takeover_and_release(kube_api):
    cluster = kube_api.clusters["member1"]
    cluster.enable("coordination.k8s.io/v1/leases")
    clients = [
        await kubernetes_asyncio.config.new_client_from_config(str(kube_api.kubeconfig), context="member1")
        for _ in range(2)
    ]
    try:
        await contend(KubernetesLeaseStore(clients[0], "titanium"), KubernetesLeaseStore(clients[1], "titanium"))
        stored = await cluster.get("coordination.k8s.io/v1/leases", "collector", namespace="titanium")
        assert stored["spec"]["holderIdentity"] == ""  # released by the last holder's stop
        assert stored["spec"]["leaseDurationSeconds"] == 2
        assert stored["spec"]["leaseTransitions"] >= 2
    finally:
        for api_client in clients:
            await api_client.close()


async def test_an_unreachable_store_means_working_alone_until_it_answers(private_redis):
    private_redis.stop()
    lease = Lease(RedisLeaseStore(private_redis.url, "t:"), "collector", "replica-a", TTL_S)
    await lease.start()
    try:
        assert lease.mode == "alone" and lease.is_holder
        assert "redis failed" in lease.snapshot()["problem"]
        private_redis.start()
        await wait_mode(lease, "holder", TTL_S * 2)
    finally:
        await lease.stop()


def test_the_backend_follows_the_settings(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    alone = open_lease(LeaseSettings(service_name="edge-config"), redis_prefix="p:")
    assert (alone.store, alone.mode, alone.is_holder, alone.name) == (None, "alone", True, "edge-config")
    port = free_port()
    shared = open_lease(
        LeaseSettings(service_name="x", redis_url=f"redis://127.0.0.1:{port}/0", replica_name="r1"), redis_prefix="p:"
    )
    assert isinstance(shared.store, RedisLeaseStore) and shared.holder == "r1"
