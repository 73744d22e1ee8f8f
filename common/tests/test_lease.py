"""The lease helper against a real Redis (a key prefix of the test's own) and the real kubernetes_asyncio client
against the Kubernetes API double: one holder at a time, takeover after the holder's death, release on stop."""

import asyncio
import time

import pytest

from tests.support.servers import free_port
from titanium_common.kube import KubeConfigMissing, connect
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
    # Each store closes its own connection when its lease stops.
    stores = [KubernetesLeaseStore(await connect(kubeconfig=str(kube_api.kubeconfig)), "titanium") for _ in range(2)]
    await contend(*stores)
    stored = await cluster.get("coordination.k8s.io/v1/leases", "collector", namespace="titanium")
    assert stored["spec"]["holderIdentity"] == ""  # released by the last holder's stop
    assert stored["spec"]["leaseDurationSeconds"] == 2
    assert stored["spec"]["leaseTransitions"] >= 2


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


async def test_the_backend_follows_the_settings(no_kube_config, monkeypatch, kube_api):
    alone = await open_lease(LeaseSettings(service_name="edge-config"), redis_prefix="p:")
    assert (alone.store, alone.mode, alone.is_holder, alone.name) == (None, "alone", True, "edge-config")
    port = free_port()
    shared = await open_lease(
        LeaseSettings(service_name="x", redis_url=f"redis://127.0.0.1:{port}/0", replica_name="r1"), redis_prefix="p:"
    )
    assert isinstance(shared.store, RedisLeaseStore) and shared.holder == "r1"
    await shared.store.close()
    asked = LeaseSettings(service_name="x", lease_backend="kubernetes", replica_name="r1")
    with pytest.raises(KubeConfigMissing, match=r"no Kubernetes configuration: .*\$KUBECONFIG unset"):
        await open_lease(asked, redis_prefix="p:")
    # Outside a pod, LEASE_BACKEND=kubernetes takes the kubeconfig's current context (and its namespace).
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    kube_api.clusters["member1"].enable("coordination.k8s.io/v1/leases", namespaced=True)
    lease = await open_lease(asked, redis_prefix="p:")
    await lease.start()
    try:
        assert (lease.store.where, lease.mode) == ("kubernetes lease in default", "holder")
    finally:
        await lease.stop()
    stored = await kube_api.clusters["member1"].get("coordination.k8s.io/v1/leases", "x", namespace="default")
    assert stored["spec"]["holderIdentity"] == ""


async def test_in_a_pod_auto_takes_a_kubernetes_lease_in_the_pods_namespace(kube_pod, monkeypatch):
    # A kubeconfig for other clusters (what cluster-monitor may watch) does not move the Lease out of the pod's own.
    monkeypatch.setenv("KUBECONFIG", "/elsewhere/kubeconfig")
    kube_pod.cluster.enable("coordination.k8s.io/v1/leases", namespaced=True)
    lease = await open_lease(LeaseSettings(service_name="edge-config", replica_name="pod-a"), redis_prefix="p:")
    await lease.start()
    try:
        assert (lease.store.where, lease.mode) == ("kubernetes lease in titanium", "holder")
        stored = await kube_pod.cluster.get("coordination.k8s.io/v1/leases", "edge-config", namespace="titanium")
        assert stored["spec"]["holderIdentity"] == "pod-a"
    finally:
        await lease.stop()
