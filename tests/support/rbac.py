"""Kubernetes RBAC in front of the API server double: the rendered Roles, ClusterRoles and bindings decide, per
service-account token, whether a request goes through (else 403 as a real API server answers), and every request
is recorded with its verb and resource, so a test can compare what the code calls with what it is granted.

    rbac = Rbac.from_manifests(rendered_docs)
    async with rbac_cluster(tmp_path, rbac, ("titanium-local", "local-cluster-monitor")) as cluster:
        client = await config.new_client_from_config(str(cluster.kubeconfig), persist_config=False)
        ...
        cluster.api.calls   # [Call(account, verb, group, resource, namespace, allowed)]

Requests without a bearer token are the test's own set-up (FakeCluster writes) and pass unrecorded: the
kubernetes_asyncio clients under test always send the token of their kubeconfig.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from tests.support.kubernetes import ApiServerDouble, FakeCluster

Account = tuple[str, str]  # (namespace, service account name)


@dataclass(frozen=True)
class Call:
    account: Account
    verb: str
    group: str
    resource: str
    namespace: str | None
    allowed: bool


@dataclass(frozen=True)
class Rule:
    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    names: frozenset[str]

    def admits(self, verb: str, group: str, resource: str, name: str | None) -> bool:
        """As the API server matches a rule: group, resource and verb named (or `*`), and the name if restricted."""
        return (
            bool({"*", group} & self.groups)
            and bool({"*", resource} & self.resources)
            and bool({"*", verb} & self.verbs)
            and (not self.names or name in self.names)
        )


def _rules(role: dict[str, Any]) -> list[Rule]:
    return [
        Rule(
            frozenset(r.get("apiGroups", [])),
            frozenset(r.get("resources", [])),
            frozenset(r["verbs"]),
            frozenset(r.get("resourceNames", [])),
        )
        for r in role.get("rules") or []
    ]


@dataclass
class Rbac:
    """Who may do what: (account, namespace or None for everywhere) → rules."""

    grants: dict[Account, list[tuple[str | None, Rule]]] = field(default_factory=dict)

    @classmethod
    def from_manifests(cls, docs: tuple[dict[str, Any], ...]) -> "Rbac":
        roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "Role"}
        cluster_roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
        rbac = cls()
        for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
            namespace = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
            ref = binding["roleRef"]
            role = cluster_roles[ref["name"]] if ref["kind"] == "ClusterRole" else roles[(namespace, ref["name"])]
            for subject in binding["subjects"]:
                assert subject["kind"] == "ServiceAccount", subject
                account = (subject["namespace"], subject["name"])
                rbac.grants.setdefault(account, []).extend((namespace, rule) for rule in _rules(role))
        return rbac

    def allows(self, account: Account, verb: str, group: str, resource: str, namespace: str | None, name: str | None):
        return any(
            (where is None or where == namespace) and rule.admits(verb, group, resource, name)
            for where, rule in self.grants.get(account, [])
        )

    def granted(self, account: Account) -> set[tuple[str, str, str, str | None]]:
        """(verb, group, resource, namespace or None) for every combination the account's rules name."""
        return {
            (verb, group, resource, where)
            for where, rule in self.grants.get(account, [])
            for verb in rule.verbs
            for group in rule.groups
            for resource in rule.resources
        }


def request_attributes(request: aiohttp.web.BaseRequest) -> tuple[str, str, str, str | None, str | None] | None:
    """(verb, group, resource, namespace, name) of a resource request; None for a non-resource URL (/version)."""
    parts = [p for p in request.path.split("/") if p]
    if parts[:1] == ["api"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else None)
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(request.method)
    if verb is None and request.method == "DELETE":
        verb = "delete" if name else "deletecollection"
    if verb is None:
        watching = request.query.get("watch", "").lower() in ("true", "1")
        verb = "get" if name else ("watch" if watching else "list")
    return verb, group, resource, namespace, name


@attrs.define(kw_only=True)
class RbacApiServer(ApiServerDouble):
    rbac: Rbac = attrs.field(factory=Rbac)
    tokens: dict[str, Account] = attrs.field(factory=dict)
    calls: list[Call] = attrs.field(factory=list, init=False)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        header = raw_request.headers.get("Authorization", "")
        if not header:
            return await super().__call__(raw_request)
        account = self.tokens.get(header.removeprefix("Bearer "))
        if account is None:
            return _status(401, "Unauthorized", "Unauthorized")
        attributes = request_attributes(raw_request)
        if attributes is not None:
            verb, group, resource, namespace, name = attributes
            allowed = self.rbac.allows(account, verb, group, resource, namespace, name)
            self.calls.append(Call(account, verb, group, resource, namespace, allowed))
            if not allowed:
                user = f"system:serviceaccount:{account[0]}:{account[1]}"
                where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
                message = f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}"{where}'
                return _status(403, "Forbidden", message)
        return await super().__call__(raw_request)


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason}
    return aiohttp.web.json_response(body | {"message": message}, status=code)


@dataclass
class RbacCluster(FakeCluster):
    kubeconfig: Path = Path()


@contextlib.asynccontextmanager
async def rbac_cluster(
    directory: Path, rbac: Rbac, account: Account, name: str = "cluster"
) -> AsyncIterator[RbacCluster]:
    """An RBAC-enforcing API server double and a kubeconfig (context `name`) holding `account`'s token."""
    token = f"token-{account[0]}-{account[1]}"
    api = RbacApiServer(rbac=rbac, tokens={token: account})
    async with api, kmock.Server(api) as server:
        url = str(server.url).rstrip("/")
        kubeconfig = directory / f"{name}.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": name, "cluster": {"server": url}}],
                    "users": [{"name": account[1], "user": {"token": token}}],
                    "contexts": [{"name": name, "context": {"cluster": name, "user": account[1]}}],
                    "current-context": name,
                }
            )
        )
        yield RbacCluster(name, api, url, kubeconfig)
