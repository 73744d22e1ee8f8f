"""One way to reach Kubernetes, for every part of Titanium that does (cluster-monitor, edge-config, the lease).

The rules (docs/architecture.md has them for operators):
- `mode="auto"` uses a kubeconfig when one is named (the service's setting), `$KUBECONFIG` is set,
  `~/.kube/config` exists or a context is asked for; otherwise the pod's service account when running in a pod
  that has one; otherwise nothing (KubeConfigMissing). `mode="kubeconfig"` and `mode="in-cluster"` use only that.
- A kubeconfig is read as kubectl reads it: `$KUBECONFIG` may list several files, merged (the first file to name
  a cluster, user, context or current context wins); the context asked for, else the current one; the file is
  never written back (refreshed tokens stay in memory).
- Every request ends within `timeout_s` (TimedApiClient) unless the call passes its own `_request_timeout`.
- What cannot be loaded raises KubeConfigError, saying which file or account and why; KubeConfigMissing, a kind
  of it, says where it looked when there is nothing to load.
- `failure_reason(exc)` is how a failed call reads in logs, figures and answers.
"""

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.kube_config import ENV_KUBECONFIG_PATH_SEPARATOR, KubeConfigMerger

log = logging.getLogger("titanium.kube")

Mode = Literal["auto", "kubeconfig", "in-cluster"]
# Where Kubernetes mounts a pod's service account (token, ca.crt, namespace).
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"
DEFAULT_TIMEOUT_S = 5.0
REASON_LIMIT = 300


class KubeConfigError(Exception):
    """A Kubernetes configuration was found but cannot be used (the message names the file or account, and why)."""


class KubeConfigMissing(KubeConfigError):
    """No Kubernetes configuration to load (the message says where it looked)."""


class TimedApiClient(client.ApiClient):
    """An ApiClient whose every request ends within `timeout_s`, unless the call passes its own `_request_timeout`
    (kubernetes_asyncio's default is no timeout at all: a silent API server would hold the caller forever)."""

    def __init__(self, configuration: client.Configuration, timeout_s: float) -> None:
        super().__init__(configuration)
        self.timeout_s = timeout_s

    def request(self, *args, _request_timeout=None, **kwargs):
        return super().request(*args, _request_timeout=_request_timeout or self.timeout_s, **kwargs)


@dataclass
class KubeConnection:
    """A client for one cluster and what it is: `where` for logs and figures, the namespace the configuration
    names (a kubeconfig context's, the pod's; else "default")."""

    api_client: TimedApiClient
    source: str  # "kubeconfig <path>, context <name>" or "in-cluster service account"
    context: str | None  # the kubeconfig context (None in-cluster)
    namespace: str

    @property
    def host(self) -> str:
        return self.api_client.configuration.host

    @property
    def where(self) -> str:
        return f"{self.host} ({self.source})"

    async def close(self) -> None:
        await self.api_client.close()


def _one_line(exc: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def failure_reason(exc: BaseException, timeout_s: float | None = None) -> str:
    """How a failed Kubernetes call (or configuration) reads: the API's own message, a timeout, or unreachable."""
    if isinstance(exc, KubeConfigError):
        reason = str(exc)
    elif isinstance(exc, ApiException):
        message = exc.reason or ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):  # a body that is not a Status
            message = json.loads(exc.body).get("message") or message
        reason = f"Kubernetes API answered {exc.status}: {message}"
    elif isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        within = f" within {timeout_s:g} s" if timeout_s else ""
        reason = f"Kubernetes API did not answer{within}"
    elif isinstance(exc, aiohttp.ClientError | OSError):
        reason = f"Kubernetes API unreachable: {_one_line(exc)}"
    else:
        reason = f"Kubernetes API call failed: {_one_line(exc)}"
    return reason[:REASON_LIMIT]


def in_pod() -> bool:
    """Running in a pod that has a service account token (a pod without one cannot call the API)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT / "token").is_file()


def pod_namespace() -> str:
    """The pod's own namespace, else "default"."""
    try:
        return (SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"


def kubeconfig_paths(named: str = "") -> str:
    """The kubeconfig to read: `named`, else `$KUBECONFIG` (which may list several), else ~/.kube/config if it
    exists; "" when there is none."""
    if named or os.environ.get("KUBECONFIG"):
        return named or os.environ["KUBECONFIG"]
    default = Path(DEFAULT_KUBECONFIG).expanduser()
    return str(default) if default.exists() else ""


def _not_in_pod() -> str:
    if not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "not running in a pod (KUBERNETES_SERVICE_HOST is unset)"
    return f"the pod has no service account token ({SERVICE_ACCOUNT / 'token'} is missing)"


def _chosen_context(paths: str, context: str) -> str:
    """The context to use (`context`, else the current one), checked against the kubeconfig's contexts."""
    if not any(p and Path(p).expanduser().exists() for p in paths.split(ENV_KUBECONFIG_PATH_SEPARATOR)):
        raise KubeConfigMissing(f"kubeconfig {paths} does not exist")
    try:
        merger = KubeConfigMerger(paths)
        names = [entry["name"] for entry in merger.config.value.get("contexts") or []]
        # As kubectl: the first file that sets it (kubernetes_asyncio's merge lets the last one win).
        current = next((c["current-context"] for c in merger.config_files.values() if c.get("current-context")), None)
    except Exception as exc:  # not YAML, not a mapping, an entry without a name
        raise KubeConfigError(f"failed to load kubeconfig {paths}: {_one_line(exc)}"[:REASON_LIMIT]) from exc
    chosen = context or current
    if not chosen:
        raise KubeConfigError(f"kubeconfig {paths} has no current-context and no context was asked for")
    if chosen not in names:
        has = ", ".join(names) or "none"
        raise KubeConfigError(f"kubeconfig {paths} has no context {chosen!r} (it has: {has})"[:REASON_LIMIT])
    return chosen


def _nothing_found(context: str, mode: Mode) -> KubeConfigMissing:
    wanted = f"context {context!r} asked for, but " if context else ""
    looked = f"no kubeconfig named, $KUBECONFIG unset, {Path(DEFAULT_KUBECONFIG).expanduser()} absent"
    outside = "" if mode == "kubeconfig" else f", and {_not_in_pod()}"
    return KubeConfigMissing(f"no Kubernetes configuration: {wanted}{looked}{outside}")


async def _from_kubeconfig(paths: str, context: str, timeout_s: float) -> KubeConnection:
    chosen = _chosen_context(paths, context)
    configuration = client.Configuration()
    try:
        loader = await config.load_kube_config(
            config_file=paths, context=chosen, client_configuration=configuration, persist_config=False
        )
    except Exception as exc:  # a broken kubeconfig fails in many ways (keys, base64, certificate files, exec plugins)
        raise KubeConfigError(f"failed to load kubeconfig {paths}: {_one_line(exc)}"[:REASON_LIMIT]) from exc
    namespace = (loader.current_context.get("context") or {}).get("namespace") or "default"
    source = f"kubeconfig {paths}, context {chosen}"
    return KubeConnection(TimedApiClient(configuration, timeout_s), source, chosen, namespace)


def _from_service_account(timeout_s: float) -> KubeConnection:
    configuration = client.Configuration()
    try:
        config.load_incluster_config(
            client_configuration=configuration,
            token_filename=str(SERVICE_ACCOUNT / "token"),
            cert_filename=str(SERVICE_ACCOUNT / "ca.crt"),
        )
    except Exception as exc:  # the host/port variables, the token or the CA file missing or empty
        raise KubeConfigError(f"failed to load the pod's service account ({SERVICE_ACCOUNT}): {exc}") from exc
    return KubeConnection(TimedApiClient(configuration, timeout_s), "in-cluster service account", None, pod_namespace())


async def connect(
    *, kubeconfig: str = "", context: str = "", mode: Mode = "auto", timeout_s: float = DEFAULT_TIMEOUT_S
) -> KubeConnection:
    """A client for the cluster the rules above choose; raises KubeConfigError (or KubeConfigMissing)."""
    paths = kubeconfig_paths(kubeconfig)
    if mode == "in-cluster" or (mode == "auto" and not paths and not context and in_pod()):
        if not in_pod():
            raise KubeConfigMissing(f"no in-cluster configuration: {_not_in_pod()}")
        connection = _from_service_account(timeout_s)
    elif paths:
        connection = await _from_kubeconfig(paths, context, timeout_s)
    else:
        raise _nothing_found(context, mode)
    log.info("Kubernetes API at %s", connection.where)
    return connection
