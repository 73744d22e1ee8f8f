"""A simulated pair of member clusters: fixed sample nodes, pods and deployments, moving usage, incidents."""

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..resources import Cluster, Deployment, Namespace, Node, Pod, Usage, display_name

GiB = 2**30
REGION = "Seoul"
# Per tick: a Ready node going NotReady (for a few ticks), a pod restarting, the web-server deployment scaling.
NODE_FAILURE_P = 0.01
POD_RESTART_P = 0.02
SCALE_P = 0.015


@dataclass
class _SimNode:
    cluster: str
    name: str
    cpu_m: float
    memory: int
    ip: str
    down_ticks: int = 0


@dataclass
class _SimPod:
    cluster: str
    namespace: str
    name: str
    node: str
    app: str
    cpu_m: float  # typical usage; the figures move around it
    memory: int
    ip: str
    created: datetime
    phase_shift: float
    restarts: int = 0


@dataclass
class _SimDeployment:
    cluster: str
    namespace: str
    name: str
    replicas: int
    node: str
    cpu_m: float
    memory: int
    created: datetime
    pods: list[str] = field(default_factory=list)


class SimulatedSource:
    """Deterministic for a given seed: each `snapshot()` is one step of the same sequence."""

    name = "simulated"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.tick = 0
        born = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
        self.born = born
        self.nodes = [
            _SimNode("member1", "node-1", 4000, 8 * GiB, "172.18.0.2"),
            _SimNode("member2", "node-2", 8000, 16 * GiB, "172.18.0.3"),
        ]
        self.pods: dict[tuple[str, str, str], _SimPod] = {}
        self.deployments = [
            _SimDeployment("member1", "default", "web-server", 1, "node-1", 220, 256 * 2**20, born),
            _SimDeployment("member2", "default", "app-backend", 1, "node-2", 450, 512 * 2**20, born),
            _SimDeployment("member1", "monitoring", "prometheus", 1, "node-1", 300, 1 * GiB, born),
        ]
        for deployment in self.deployments:
            self._start_pod(deployment, born)

    def _start_pod(self, deployment: _SimDeployment, created: datetime) -> None:
        number = len(deployment.pods) + 1
        name = f"{deployment.name}-{number}"  # names like web-server-1, app-backend-1, prometheus-1
        ip = f"10.244.{1 if deployment.node == 'node-1' else 2}.{10 + len(self.pods) + number}"
        self.pods[(deployment.cluster, deployment.namespace, name)] = _SimPod(
            deployment.cluster,
            deployment.namespace,
            name,
            deployment.node,
            deployment.name,
            deployment.cpu_m,
            deployment.memory,
            ip,
            created,
            self.rng.uniform(0, 2 * math.pi),
        )
        deployment.pods.append(name)

    def _step(self, now: datetime) -> None:
        self.tick += 1
        for node in self.nodes:
            if node.down_ticks:
                node.down_ticks -= 1
                if not node.down_ticks:  # back: its pods were restarted by the kubelet
                    for pod in self.pods.values():
                        if pod.node == node.name:
                            pod.restarts += 1
            elif self.rng.random() < NODE_FAILURE_P:
                node.down_ticks = self.rng.randint(3, 6)
        if self.rng.random() < POD_RESTART_P:
            pod = self.pods[self.rng.choice(sorted(self.pods))]
            pod.restarts += 1
        if self.rng.random() < SCALE_P:
            web = self.deployments[0]
            if web.replicas == 1:
                web.replicas = 2
                self._start_pod(web, now)
            else:
                web.replicas = 1
                del self.pods[(web.cluster, web.namespace, web.pods.pop())]

    def _usage(self, pod: _SimPod) -> Usage:
        wave = 1 + 0.3 * math.sin(self.tick / 12 + pod.phase_shift)
        cpu = max(5.0, pod.cpu_m * wave * self.rng.uniform(0.85, 1.15))
        memory = int(pod.memory * (0.9 + 0.1 * wave) * self.rng.uniform(0.97, 1.03))
        return Usage(
            round(cpu, 1),
            memory,
            self.rng.randint(0, 400_000),
            self.rng.randint(0, 1_200_000),
            self.rng.randint(20_000, 900_000),
            self.rng.randint(20_000, 1_500_000),
        )

    async def snapshot(self) -> list[Cluster]:
        now = datetime.now(UTC)
        self._step(now)
        clusters = {
            cid: Cluster(cid, display_name(cid), REGION, metrics_available=True) for cid in ("member1", "member2")
        }
        ready = {node.name: not node.down_ticks for node in self.nodes}
        node_totals: dict[str, list[float]] = {node.name: [0.0] * 6 for node in self.nodes}
        for pod in self.pods.values():
            usage = self._usage(pod) if ready[pod.node] else None
            if usage is not None:
                totals = node_totals[pod.node]
                for index, value in enumerate(vars(usage).values()):
                    totals[index] += value
            clusters[pod.cluster].pods.append(
                Pod(
                    pod.cluster,
                    pod.namespace,
                    pod.name,
                    pod.node,
                    "Running" if ready[pod.node] else "Unknown",
                    1 if ready[pod.node] else 0,
                    1,
                    pod.restarts,
                    pod.ip,
                    pod.created,
                    {"app": pod.app},
                    usage,
                )
            )
        for node in self.nodes:
            totals = node_totals[node.name]
            overhead = node.cpu_m * 0.05 * self.rng.uniform(0.8, 1.2)
            usage = Usage(round(totals[0] + overhead, 1), int(totals[1] + 0.12 * node.memory), *map(int, totals[2:]))
            clusters[node.cluster].nodes.append(
                Node(
                    node.cluster,
                    node.name,
                    ready[node.name],
                    self.born,
                    "worker",
                    "v1.30.0",
                    node.ip,
                    "Debian GNU/Linux 12 (bookworm)",
                    "6.1.0-18-amd64",
                    "containerd://1.7.13",
                    node.cpu_m,
                    node.memory,
                    node.cpu_m,
                    node.memory,
                    {"kubernetes.io/hostname": node.name},
                    usage if ready[node.name] else None,
                )
            )
        for deployment in self.deployments:
            pods = [p for p in clusters[deployment.cluster].pods if p.labels["app"] == deployment.name]
            up = sum(1 for p in pods if p.ready_containers)
            clusters[deployment.cluster].deployments.append(
                Deployment(
                    deployment.cluster,
                    deployment.namespace,
                    deployment.name,
                    deployment.replicas,
                    up,
                    up,
                    {"app": deployment.name},
                    deployment.created,
                )
            )
        for cluster in clusters.values():
            cluster.namespaces = [Namespace(cluster.id, ns, "Active", self.born) for ns in ("default", "monitoring")]
        return list(clusters.values())

    async def close(self) -> None:
        return None
