"""A local Kubernetes API server double for the real `kubernetes_asyncio` client (cluster-monitor, edge-config).

Each cluster is its own kmock `KubernetesEmulator` (stateful objects, list, watch, create, patch, delete, errors as
`Status` objects) on its own loopback port, and a kubeconfig names one context per cluster, so code under test
loads it exactly as it would load a real one:

    async def test_two_clusters(kube_api):              # contexts "member1" (current) and "member2"
        member1 = kube_api.clusters["member1"]
        await member1.create("v1/nodes", {"metadata": {"name": "n1"}, "status": {...}})
        await member1.create("v1/services", service_manifest, namespace="monitoring")
        await member1.patch("v1/nodes", "n1", {"status": {"conditions": [...]}})   # merge patch (or a JSON patch list)
        await member1.replace("v1/services", service_manifest, namespace="monitoring")
        await member1.delete("v1/nodes", "n1")
        await member1.get("v1/nodes", "n1")                # the stored object, or None
        member1.enable("metrics.k8s.io/v1beta1/nodes")     # an empty but served resource (else lists are 404)
        client = await kubernetes_asyncio.config.new_client_from_config(str(kube_api.kubeconfig), context="member2")

    @pytest.mark.kube_contexts("edge")                   # other context names; the first is the current one
    async def test_one_cluster(kube_api): ...

    async with kubernetes_api(tmp_path, "a", "b") as api: ...   # the same outside a fixture

    async with in_cluster_api(tmp_path) as pod: ...      # one cluster as a pod sees its own (see InClusterApi)
    async def test_in_a_pod(kube_pod): ...                # the same, and titanium_common.kube pointed at it
    async def test_no_cluster(no_kube_config): ...       # no pod, no $KUBECONFIG, no ~/.kube/config

Served from the start (empty lists, not 404): core/v1 nodes, pods, namespaces, services, endpoints, events;
apps/v1 deployments; discovery.k8s.io/v1 endpointslices. Any other resource (metrics.k8s.io NodeMetrics and
PodMetrics, Karmada's clusters.cluster.karmada.io/v1alpha1 clusters) is served once an object of it is created or
`enable()` is called; until then its lists answer 404, which is how a cluster without metrics-server answers.

What kmock 0.8 does not do and `ApiServerDouble` adds (small, on top of kmock rather than a second server):
- `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and `fieldSelector` (`=`, `==`, `!=` on dotted
  paths such as `metadata.name`, `spec.nodeName`) on lists: kmock lists every object of the resource;
- PUT (replace): kmock has no action for it and answers 404;
- `metadata.uid`, `resourceVersion` (bumped on every write), `creationTimestamp` and `namespace` on create;
- core/v1 Namespace objects themselves: kmock parses `/api/v1/namespaces[/{name}]` as a namespace prefix with no
  resource and fails (500), so the double keeps namespaces in a dict of its own (get, list, create, patch, put,
  delete; no watch);
- `GET /version/` (with the slash, as kubernetes_asyncio's VersionApi asks): kmock answers only `/version`.
Still not like a real server: strategic-merge patches merge dicts but replace lists whole; watches ignore selectors;
no admission, defaulting or validation (store only well-formed objects).
"""

import contextlib
import datetime
import ipaddress
import itertools
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import attrs
import kmock
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEFAULT_CONTEXTS = ("member1", "member2")
TOKEN = "double-token"

# (group/version/plural, kind, namespaced): what a fresh cluster serves even when it holds no objects.
BUILTIN_RESOURCES = (
    ("v1/nodes", "Node", False),
    ("v1/namespaces", "Namespace", False),
    ("v1/pods", "Pod", True),
    ("v1/services", "Service", True),
    ("v1/endpoints", "Endpoints", True),
    ("v1/events", "Event", True),
    ("apps/v1/deployments", "Deployment", True),
    ("discovery.k8s.io/v1/endpointslices", "EndpointSlice", True),
)

_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?(?:/status)?/?$")
_WRITES = frozenset({kmock.method.POST, kmock.method.PUT, kmock.method.PATCH})
_SELECTOR_TERMS = re.compile(r",(?![^()]*\))")
_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _terms(selector: str) -> list[tuple[str, str, frozenset[str]]]:
    """`a=b,c!=d,e in (f,g),h,!i` → [(key, operator, values)] with operators `=`, `!=`, `in`, `notin`, `exists`, `!`."""
    parsed = []
    for term in (t.strip() for t in _SELECTOR_TERMS.split(selector)):
        if not term:
            continue
        if match := _SET_TERM.match(term):
            key, operator, raw = match.groups()
            parsed.append((key, operator, frozenset(v.strip() for v in raw.split(","))))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            parsed.append((key.strip(), "!=", frozenset({value.strip()})))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            parsed.append((key.strip(), "=", frozenset({value.strip()})))
        elif term.startswith("!"):
            parsed.append((term[1:].strip(), "!", frozenset()))
        else:
            parsed.append((term, "exists", frozenset()))
    return parsed


def _holds(operator: str, present: bool, value: str, values: frozenset[str]) -> bool:
    match operator:
        case "=" | "in":
            return present and value in values
        case "!=" | "notin":
            return not present or value not in values
        case "exists":
            return present
        case _:
            return not present


def label_matcher(selector: str) -> Callable[[dict[str, str]], bool]:
    """A predicate over an object's labels for a Kubernetes label selector string."""
    terms = _terms(selector)
    return lambda labels: all(_holds(op, key in labels, labels.get(key, ""), vs) for key, op, vs in terms)


def _dotted(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_matcher(selector: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate over a whole object for a Kubernetes field selector string (`=`, `==`, `!=` only)."""
    terms = _terms(selector)
    return lambda obj: all(_holds(op, True, _dotted(obj, key), vs) for key, op, vs in terms)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(kw_only=True)
class ApiServerDouble(kmock.KubernetesEmulator):
    """kmock's stateful emulator plus selectors, PUT and server-set metadata (see the module docstring)."""

    _versions: itertools.count = attrs.field(factory=lambda: itertools.count(1), init=False)
    namespaces: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for resource, kind, namespaced in BUILTIN_RESOURCES:
            self.resources[resource] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs={"get", "list", "watch", "create", "update", "patch", "delete"}
            )

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.path == "/version/":  # kubernetes_asyncio's VersionApi asks with the slash; kmock has no slash
            return aiohttp.web.json_response(await self._serve_server_version(None))
        match = _NAMESPACE_PATH.match(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        return await self._namespace(raw_request, match.group(1))

    async def _namespace(self, raw: aiohttp.web.BaseRequest, name: str | None) -> aiohttp.web.StreamResponse:
        body = await raw.json() if raw.can_read_body else None
        if name is None and raw.method == "GET":
            labels = label_matcher(raw.query.get("labelSelector", ""))
            items = [ns for ns in self.namespaces.values() if labels(ns["metadata"].get("labels") or {})]
            listing = {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": items}
            return aiohttp.web.json_response(listing)
        if name is None and raw.method == "POST":
            name = body["metadata"]["name"]
            if name in self.namespaces:
                return _status(409, "AlreadyExists", f'namespaces "{name}" already exists')
            meta = body["metadata"]
            meta |= {"uid": str(uuid.uuid4()), "creationTimestamp": _now()}
            meta["resourceVersion"] = str(next(self._versions))
            body.setdefault("status", {"phase": "Active"})
            self.namespaces[name] = body
            return aiohttp.web.json_response(body, status=201)
        if name not in self.namespaces:
            return _status(404, "NotFound", f'namespaces "{name}" not found')
        if raw.method == "DELETE":
            return aiohttp.web.json_response(self.namespaces.pop(name))
        if raw.method in ("PATCH", "PUT"):
            stored = kmock.Object(self.namespaces[name])
            if raw.method == "PUT":
                stored.create(body)
            else:
                stored.patch(body)
            self.namespaces[name] = stored.raw
            self.namespaces[name]["metadata"]["resourceVersion"] = str(next(self._versions))
        return aiohttp.web.json_response(self.namespaces[name])

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and request.method in _WRITES and isinstance(request.data, dict):
            self._stamp(request)
        if request.resource is not None and request.name is not None and request.method == kmock.method.PUT:
            return await self._replace(request)
        return await super()._handle(request)

    def _stamp(self, request: kmock.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._versions))
        if request.action == kmock.action.CREATE:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            if request.namespace:
                meta["namespace"] = request.namespace

    async def _replace(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            stored = self.objects[key]
            meta = request.data["metadata"]
            for kept in ("uid", "creationTimestamp", "namespace", "name"):
                if kept in stored.get("metadata", {}):
                    meta[kept] = stored["metadata"][kept]
            stored.create(request.data)
            raw = stored.raw
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        listing = await super()._serve_list(request)
        labels = label_matcher(request.params.get("labelSelector", ""))
        fields = field_matcher(request.params.get("fieldSelector", ""))
        listing["items"] = [
            item for item in listing["items"] if labels(item.get("metadata", {}).get("labels") or {}) and fields(item)
        ]
        listing["metadata"]["resourceVersion"] = str(next(self._versions))
        return listing


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    body["message"] = message
    return aiohttp.web.json_response(body, status=code)


def _path(resource: str, namespace: str | None, name: str | None = None) -> str:
    parsed = kmock.resource(resource)
    base = "/api/v1" if parsed.group == "" else f"/apis/{parsed.group}/{parsed.version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{parsed.plural}" + (f"/{name}" if name else "")


@dataclass
class FakeCluster:
    """One cluster: its API server double, its URL, and writes that go through the server's real HTTP API."""

    name: str
    api: ApiServerDouble
    url: str

    async def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        async with self.api.request(method, path, json=body, headers={"Content-Type": content_type}) as response:
            if response.status == 404 and method == "GET":
                return None
            if response.status >= 300:
                raise AssertionError(f"{method} {path} → {response.status}: {await response.text()}")
            return await response.json()

    async def create(self, resource: str, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return await self._call("POST", _path(resource, namespace), obj)

    async def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return await self._call("GET", _path(resource, namespace, name))

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "") -> list[dict]:
        path = _path(resource, namespace) + (f"?labelSelector={label_selector}" if label_selector else "")
        listing = await self._call("GET", path)
        return [] if listing is None else listing["items"]

    async def patch(self, resource: str, name: str, patch: Any, namespace: str | None = None) -> dict[str, Any]:
        kind = "application/json-patch+json" if isinstance(patch, list) else "application/merge-patch+json"
        return await self._call("PATCH", _path(resource, namespace, name), patch, kind)

    async def replace(self, resource: str, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return await self._call("PUT", _path(resource, namespace, obj["metadata"]["name"]), obj)

    async def delete(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self._call("DELETE", _path(resource, namespace, name))

    def enable(self, resource: str, kind: str | None = None, namespaced: bool = False) -> None:
        """Serve `resource` (e.g. "metrics.k8s.io/v1beta1/nodes") even while it holds no objects."""
        self.api.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs={"get", "list"})


@dataclass
class KubeApi:
    """Every cluster of a test and the kubeconfig that names them (its current context is the first)."""

    kubeconfig: Path
    clusters: dict[str, FakeCluster] = field(default_factory=dict)


def write_kubeconfig(path: Path, servers: dict[str, str], current: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}} for name, url in servers.items()],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "tester"}} for name in servers],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.asynccontextmanager
async def kubernetes_api(directory: Path, *contexts: str) -> AsyncIterator[KubeApi]:
    """One API server double per context on loopback ports, and `directory/kubeconfig` naming them."""
    contexts = contexts or DEFAULT_CONTEXTS
    async with contextlib.AsyncExitStack() as stack:
        clusters: dict[str, FakeCluster] = {}
        for name in contexts:
            api = await stack.enter_async_context(ApiServerDouble())
            server = await stack.enter_async_context(kmock.Server(api))
            clusters[name] = FakeCluster(name, api, str(server.url).rstrip("/"))
        path = write_kubeconfig(directory / "kubeconfig", {n: c.url for n, c in clusters.items()}, contexts[0])
        yield KubeApi(path, clusters)


def _self_signed(cert_file: Path, key_file: Path, host: str) -> None:
    """A certificate for `host` (an IP address) that is its own CA, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api-server-double")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, False, False, False), critical=True
        )  # digitalSignature, keyCertSign
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class _TlsServer(aiohttp.test_utils.RawTestServer):
    """kmock's server, over TLS (kmock itself serves plain HTTP only)."""

    def __init__(self, handler, *, tls: ssl.SSLContext, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.tls = tls

    async def start_server(self, **kwargs) -> None:
        await super().start_server(ssl=self.tls, **kwargs)


@dataclass
class InClusterApi:
    """One cluster as a pod sees its own: the API server double over HTTPS at `host`:`port` (what
    KUBERNETES_SERVICE_HOST and _PORT say in a pod) and a service-account directory (token, ca.crt, namespace) as
    Kubernetes mounts it. Point the code under test at `service_account` and set the two variables."""

    cluster: FakeCluster
    service_account: Path
    host: str
    port: int
    namespace: str
    token: str = TOKEN


@contextlib.asynccontextmanager
async def in_cluster_api(directory: Path, namespace: str = "titanium") -> AsyncIterator[InClusterApi]:
    account = directory / "serviceaccount"
    account.mkdir()
    ca_file, key_file = account / "ca.crt", directory / "api-server.key"
    _self_signed(ca_file, key_file, "127.0.0.1")
    (account / "token").write_text(TOKEN)
    (account / "namespace").write_text(namespace)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(ca_file, key_file)
    trusted = ssl.create_default_context(cafile=str(ca_file))

    def server(handler, **kwargs) -> _TlsServer:
        return _TlsServer(handler, tls=served, **kwargs)

    def session(url) -> aiohttp.ClientSession:  # the double's own client (FakeCluster's writes) trusts the CA
        return aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(ssl=trusted))

    async with ApiServerDouble() as api, kmock.Server(api, server_cls=server, client_fct=session) as served_at:
        cluster = FakeCluster("in-cluster", api, str(served_at.url).rstrip("/"))
        yield InClusterApi(cluster, account, served_at.host, served_at.port, namespace)


@pytest.fixture
def no_kube_config(monkeypatch, tmp_path) -> Path:
    """Outside a pod, no $KUBECONFIG, an empty home (no ~/.kube/config), as titanium_common.kube sees it; the home."""
    for variable in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG"):
        monkeypatch.delenv(variable, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr("titanium_common.kube.SERVICE_ACCOUNT", tmp_path / "no-service-account")
    return home


@pytest.fixture
async def kube_pod(no_kube_config, monkeypatch, tmp_path) -> AsyncIterator[InClusterApi]:
    """In a pod, as titanium_common.kube sees it: its service account and KUBERNETES_SERVICE_HOST/_PORT."""
    async with in_cluster_api(tmp_path) as api:
        monkeypatch.setattr("titanium_common.kube.SERVICE_ACCOUNT", api.service_account)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", api.host)
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
        yield api


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kube_contexts(*names): the kubeconfig contexts of the kube_api fixture")


@pytest.fixture
async def kube_api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KubeApi]:
    marker = request.node.get_closest_marker("kube_contexts")
    async with kubernetes_api(tmp_path, *(marker.args if marker else DEFAULT_CONTEXTS)) as api:
        yield api
