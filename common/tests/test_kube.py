"""titanium_common.kube with the real kubernetes_asyncio client against the Kubernetes API double: in-cluster (a
service account and the API over TLS, as in a pod), kubeconfig files and contexts, what missing or broken
configuration says, and the request timeout."""

import asyncio
import re

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.support.kubernetes import TOKEN, write_kubeconfig
from tests.support.polling import eventually
from tests.support.servers import free_port
from titanium_common import kube
from titanium_common.kube import KubeConfigError, KubeConfigMissing, connect, failure_reason


def service(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


async def service_names(connection: kube.KubeConnection, namespace: str) -> list[str]:
    listing = await client.CoreV1Api(connection.api_client).list_namespaced_service(namespace)
    return [item.metadata.name for item in listing.items]


async def test_in_a_pod_the_service_account_is_used(kube_pod):
    await kube_pod.cluster.create("v1/services", service("in-pod"), namespace="titanium")
    assert kube.in_pod() and kube.pod_namespace() == "titanium"
    connection = await connect()
    try:
        assert connection.source == "in-cluster service account" and connection.context is None
        assert connection.host == f"https://{kube_pod.host}:{kube_pod.port}"  # over TLS, trusted through ca.crt
        assert connection.namespace == "titanium"
        assert await service_names(connection, "titanium") == ["in-pod"]
        assert list(kube_pod.cluster.api)[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    finally:
        await connection.close()


async def test_in_a_pod_a_named_kubeconfig_wins_unless_in_cluster_is_asked_for(kube_pod, kube_api):
    await kube_api.clusters["member1"].create("v1/services", service("elsewhere"), namespace="default")
    named = await connect(kubeconfig=str(kube_api.kubeconfig))
    in_cluster = await connect(kubeconfig=str(kube_api.kubeconfig), mode="in-cluster")
    try:
        assert named.context == "member1" and await service_names(named, "default") == ["elsewhere"]
        assert in_cluster.source == "in-cluster service account"
    finally:
        await named.close()
        await in_cluster.close()


async def test_a_pod_without_a_usable_service_account(kube_pod):
    (kube_pod.service_account / "token").unlink()
    assert not kube.in_pod()
    with pytest.raises(KubeConfigMissing, match=r"no service account token \(.*/token is missing\)"):
        await connect()
    with pytest.raises(KubeConfigMissing, match="no in-cluster configuration: the pod has no service account token"):
        await connect(mode="in-cluster")
    (kube_pod.service_account / "token").write_text(TOKEN)
    (kube_pod.service_account / "ca.crt").write_text("")
    with pytest.raises(KubeConfigError, match=r"failed to load the pod's service account \(.*\): Cert file exists"):
        await connect()


async def test_the_kubeconfig_context_asked_for_else_the_current_one(no_kube_config, kube_api):
    member1, member2 = kube_api.clusters["member1"], kube_api.clusters["member2"]
    await member1.create("v1/services", service("one"), namespace="default")
    await member2.create("v1/services", service("two"), namespace="default")
    current = await connect(kubeconfig=str(kube_api.kubeconfig))
    asked = await connect(kubeconfig=str(kube_api.kubeconfig), context="member2", mode="kubeconfig")
    try:
        assert (current.context, current.namespace) == ("member1", "default")
        assert current.where == f"{member1.url} (kubeconfig {kube_api.kubeconfig}, context member1)"
        assert await service_names(current, "default") == ["one"]
        assert asked.context == "member2" and await service_names(asked, "default") == ["two"]
    finally:
        await current.close()
        await asked.close()


async def test_kubeconfig_from_the_environment_merged_as_kubectl_does(no_kube_config, kube_api, monkeypatch, tmp_path):
    member2 = kube_api.clusters["member2"]
    other = write_kubeconfig(tmp_path / "other.yaml", {"other": member2.url}, "other")
    with_namespace = yaml.safe_load(other.read_text())
    with_namespace["contexts"][0]["context"]["namespace"] = "team"
    other.write_text(yaml.safe_dump(with_namespace))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent.yaml'}:{kube_api.kubeconfig}:{other}")
    current = await connect()  # the first file that sets current-context decides it
    asked = await connect(context="other")
    try:
        assert current.context == "member1"
        assert (asked.context, asked.namespace, asked.host) == ("other", "team", member2.url)
    finally:
        await current.close()
        await asked.close()
    assert yaml.safe_load(other.read_text()) == with_namespace  # never written back


async def test_home_kubeconfig_when_nothing_else_is_named(no_kube_config, kube_api):
    (no_kube_config / ".kube").mkdir()
    (no_kube_config / ".kube" / "config").write_text(kube_api.kubeconfig.read_text())
    connection = await connect()
    try:
        assert connection.source == f"kubeconfig {no_kube_config / '.kube' / 'config'}, context member1"
    finally:
        await connection.close()


async def test_missing_configuration_says_where_it_looked(no_kube_config, tmp_path):
    with pytest.raises(KubeConfigMissing) as nothing:
        await connect()
    assert str(nothing.value) == (
        f"no Kubernetes configuration: no kubeconfig named, $KUBECONFIG unset, {no_kube_config / '.kube' / 'config'} "
        "absent, and not running in a pod (KUBERNETES_SERVICE_HOST is unset)"
    )
    with pytest.raises(KubeConfigMissing, match=r"^no Kubernetes configuration: context 'edge' asked for, but"):
        await connect(context="edge")
    with pytest.raises(KubeConfigMissing, match=r"absent$"):  # only a kubeconfig asked for: no word on pods
        await connect(mode="kubeconfig")
    with pytest.raises(
        KubeConfigMissing, match=f"^kubeconfig {re.escape(str(tmp_path / 'gone.yaml'))} does not exist$"
    ):
        await connect(kubeconfig=str(tmp_path / "gone.yaml"))
    with pytest.raises(KubeConfigMissing, match="no in-cluster configuration: not running in a pod"):
        await connect(mode="in-cluster")
    assert issubclass(KubeConfigMissing, KubeConfigError)


async def test_a_broken_kubeconfig_says_which_file_and_why(no_kube_config, kube_api, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("clusters: [")
    with pytest.raises(
        KubeConfigError, match=f"^failed to load kubeconfig {re.escape(str(broken))}: ParserError: while parsing"
    ):
        await connect(kubeconfig=str(broken))
    with pytest.raises(KubeConfigError, match=r"has no context 'edge' \(it has: member1, member2\)$"):
        await connect(kubeconfig=str(kube_api.kubeconfig), context="edge")
    no_current = yaml.safe_load(kube_api.kubeconfig.read_text())
    del no_current["current-context"]
    (tmp_path / "no-current.yaml").write_text(yaml.safe_dump(no_current))
    with pytest.raises(KubeConfigError, match="has no current-context and no context was asked for"):
        await connect(kubeconfig=str(tmp_path / "no-current.yaml"))
    no_ca = yaml.safe_load(kube_api.kubeconfig.read_text())
    no_ca["clusters"][0]["cluster"] |= {"server": "https://127.0.0.1:6443", "certificate-authority": "gone-ca.crt"}
    (tmp_path / "no-ca.yaml").write_text(yaml.safe_dump(no_ca))
    with pytest.raises(KubeConfigError, match=r"failed to load kubeconfig .*no-ca\.yaml: ConfigException: .*gone-ca"):
        await connect(kubeconfig=str(tmp_path / "no-ca.yaml"))


async def test_every_request_ends_within_the_timeout_unless_the_call_sets_its_own(no_kube_config, kube_api):
    member1 = kube_api.clusters["member1"]
    released = asyncio.Event()

    async def hang() -> dict:
        await released.wait()
        return {"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": []}

    member1.api["get /api/v1/namespaces/default/services"] << hang
    connection = await connect(kubeconfig=str(kube_api.kubeconfig), timeout_s=0.2)
    services = client.CoreV1Api(connection.api_client)
    try:
        # Its own bound (as a watch would ask): once it is waiting at the server, a call with the default one starts.
        own = asyncio.create_task(services.list_namespaced_service("default", _request_timeout=60))
        await eventually(lambda: len(list(member1.api)) == 1)
        default = asyncio.create_task(services.list_namespaced_service("default"))
        done, _ = await asyncio.wait({default}, timeout=30)
        assert done, "the client's timeout did not end the call"
        with pytest.raises(TimeoutError) as timed_out:
            default.result()
        assert failure_reason(timed_out.value, 0.2) == "Kubernetes API did not answer within 0.2 s"
        # The call with its own bound started earlier: with the default one it would have ended first.
        assert not own.done()
        released.set()
        assert (await own).items == []
    finally:
        released.set()
        await connection.close()


async def test_failure_reasons(no_kube_config, kube_api):
    connection = await connect(kubeconfig=str(kube_api.kubeconfig))
    try:
        with pytest.raises(ApiException) as missing:
            await client.CoreV1Api(connection.api_client).read_namespaced_service("none", "default")
    finally:
        await connection.close()
    assert failure_reason(missing.value).startswith("Kubernetes API answered 404: ")
    dead = write_kubeconfig(
        kube_api.kubeconfig.parent / "dead.yaml", {"dead": f"http://127.0.0.1:{free_port()}"}, "dead"
    )
    unreachable = await connect(kubeconfig=str(dead))
    try:
        with pytest.raises(OSError) as refused:
            await client.VersionApi(unreachable.api_client).get_code()
    finally:
        await unreachable.close()
    assert failure_reason(refused.value).startswith("Kubernetes API unreachable: ClientConnectorError: ")
    assert failure_reason(TimeoutError()) == "Kubernetes API did not answer"
    assert failure_reason(KubeConfigMissing("kubeconfig /x does not exist")) == "kubeconfig /x does not exist"
    assert failure_reason(ValueError("x" * 400)).startswith("Kubernetes API call failed: ValueError: xxx")
    assert len(failure_reason(ValueError("x" * 400))) == kube.REASON_LIMIT
