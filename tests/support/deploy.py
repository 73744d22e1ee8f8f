"""The deployment artefacts as data, for the tests that check them against each other and against the code:
rendered Kustomize trees (`kubectl kustomize`, offline), a container's environment as Kubernetes would resolve
it, `skaffold.yaml`, `docker-compose.yml`, and every service's settings class."""

import base64
import functools
import importlib
import inspect
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / "k8s-manifests"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SKAFFOLD_FILE = REPO_ROOT / "skaffold.yaml"
LOCAL_NAMESPACE = "titanium-local"
LOCAL_PREFIX = "local-"

# The services built from the workspace (folder name = image name = Compose service = base Deployment name).
SERVICES = (
    "load-balancer",
    "api-gateway",
    "auth-service",
    "user-service",
    "blog-service",
    "cluster-monitor",
    "edge-config",
    "dashboard-ui",
)
DATABASE_SERVICES = ("user-service", "blog-service", "edge-config")
# Services whose pods call the Kubernetes API (all others run without a service-account token).
API_CLIENTS = ("cluster-monitor", "edge-config")


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise AssertionError("kubectl is not installed: `make deploy-tools` says how to get it")
    return path


def kustomizations() -> list[Path]:
    """Every buildable tree: the overlays, the test combinations and the load generator."""
    overlays = sorted((MANIFESTS / "overlays").iterdir()) + sorted((MANIFESTS / "tests").iterdir())
    return [p for p in [*overlays, MANIFESTS / "loadgenerator"] if (p / "kustomization.yaml").exists()]


@functools.cache
def render(path: Path) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of one tree. The empty kubeconfig keeps kubectl off any server (it never needs one)."""
    with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig") as empty:
        done = subprocess.run(
            [kubectl(), "kustomize", "--kubeconfig", empty.name, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path.relative_to(REPO_ROOT)} failed:\n{done.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def local() -> tuple[dict[str, Any], ...]:
    return render(MANIFESTS / "overlays" / "local")


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def unprefixed(name: str, prefix: str = LOCAL_PREFIX) -> str:
    return name.removeprefix(prefix)


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    template = workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]
    return template["template"]["metadata"].get("labels", {})


def workloads(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")]


# Stands in for what the operator provides (a Secret that is not rendered, a Compose variable from .env).
OPERATOR_VALUE = "operator-provided"
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(docs: tuple[dict[str, Any], ...], workload: dict[str, Any], container: dict[str, Any]) -> dict:
    """The container's environment as the kubelet builds it: ConfigMap and Secret keys resolved (a missing one
    fails), the pod's namespace for `metadata.namespace`, and `$(VAR)` references to earlier variables expanded."""
    config_maps, secrets = of_kind(docs, "ConfigMap"), of_kind(docs, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= config_maps[source["configMapRef"]["name"]]["data"]
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), var["value"])
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            env[var["name"]] = config_maps[key["name"]]["data"][key["key"]]
        elif "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            if key["name"] not in secrets:  # the operator's Secret (prod): only its name and key are known
                env[var["name"]] = OPERATOR_VALUE
                continue
            secret = secrets[key["name"]]
            data = secret.get("stringData") or {
                k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()
            }
            env[var["name"]] = data[key["key"]]
        elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[var["name"]] = workload["metadata"]["namespace"]
        else:
            raise AssertionError(f"{var['name']}: unsupported valueFrom {ref}")
    return env


def secret_references(docs: tuple[dict[str, Any], ...]) -> set[tuple[str, str]]:
    """Every (Secret name, key) a rendered container reads."""
    found = set()
    for workload in workloads(docs):
        spec = pod_spec(workload)
        for container in spec.get("initContainers", []) + spec["containers"]:
            for var in container.get("env", []):
                if key := var.get("valueFrom", {}).get("secretKeyRef"):
                    found.add((key["name"], key["key"]))
    return found


def skaffold_modules() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(SKAFFOLD_FILE.read_text()) if doc}


def compose() -> dict[str, Any]:
    if not COMPOSE_FILE.exists():
        raise AssertionError(
            f"{COMPOSE_FILE.name} is missing at the repository root: the one-source-of-truth check compares it "
            "with the manifests and skaffold.yaml"
        )
    return yaml.safe_load(COMPOSE_FILE.read_text())


# Compose interpolation: `${VAR:-default}` / `${VAR-default}` take the default; `${VAR:?message}` and `${VAR}` are
# the operator's.
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*)|:?\?[^}]*)?\}")


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """A Compose service's environment with `${...}` interpolated (the file's defaults, placeholders otherwise)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {
        k: _INTERPOLATION.sub(lambda m: m.group(2) if m.group(2) is not None else OPERATOR_VALUE, str(v or ""))
        for k, v in env.items()
    }


@dataclass(frozen=True)
class SettingsClass:
    service: str  # workspace folder, or "common" for the base every service shares
    cls: type[BaseSettings]


def settings_classes() -> list[SettingsClass]:
    """Every settings class the code defines: `*/*/settings.py` in each service folder and the common base."""
    found = []
    for path in sorted(REPO_ROOT.glob("*/*/settings.py")):
        if "node_modules" in path.parts or path.parts[-3].startswith("."):
            continue
        module = importlib.import_module(f"{path.parent.name}.settings")
        service = "common" if path.parts[-3] == "common" else path.parts[-3]
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseSettings) and cls.__module__ == module.__name__:
                found.append(SettingsClass(service, cls))
    return found


# A loopback host inside a value: an address only the process's own container could answer.
LOOPBACK = re.compile(r"(?:^|[/@,])(?:127\.0\.0\.1|localhost|\[::1\])(?:[:/,]|$)")
# A setting whose default cannot work in a container, beyond those that default to a loopback address: the
# database (empty means a SQLite file, which two replicas cannot share), the cache and the signing secret.
_MUST_SET_WHEN_EMPTY = re.compile(r"(_url|_secret)$")


def required_in_deployment(cls: type[BaseSettings]) -> set[str]:
    """Environment names of the settings a deployment must set: no default at all, a default on loopback, or an
    empty address or secret (`DATABASE_URL`, `REDIS_URL`, `JWT_SECRET`)."""
    names = set()
    for name, field in cls.model_fields.items():
        default = field.get_default(call_default_factory=True)
        text = ",".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
        if field.is_required() or LOOPBACK.search(text) or (default == "" and _MUST_SET_WHEN_EMPTY.search(name)):
            names.add(name.upper())
    return names
