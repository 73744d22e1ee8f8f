"""The Kustomize trees: every overlay and component combination renders, validates against the Kubernetes schemas
(strict), passes checkov, and holds what an operator relies on (names, namespace, hardening, probes, secrets)."""

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.support.deploy import (
    API_CLIENTS,
    DATABASE_SERVICES,
    LOCAL_NAMESPACE,
    LOCAL_PREFIX,
    MANIFESTS,
    REPO_ROOT,
    SERVICES,
    container_env,
    kustomizations,
    local,
    of_kind,
    pod_spec,
    render,
    secret_references,
    unprefixed,
    workloads,
)

TREES = kustomizations()
TREE_IDS = [str(p.relative_to(MANIFESTS)) for p in TREES]
# The oldest Kubernetes version the manifests promise, and the newest schema kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Custom resources: no schema ships for them; test_custom_resources checks what matters in them instead.
CUSTOM_KINDS = {
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
    ("policy.karmada.io", "PropagationPolicy"),
}
CHECKOV = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
CHECKOV_ARGS = (str(CHECKOV), "--framework", "kubernetes", "--output", "json", "--skip-download")
# Checks skipped for every object, and why. Per-object skips sit next to the object as checkov.io/skip
# annotations, each with its reason.
CHECKOV_SKIPS = {
    "CKV_K8S_43": "images are referenced by tag; skaffold resolves them (tag and digest) at deploy time",
    "CKV_K8S_15": "pull policy stays the default: minikube's docker-env images exist only in the node's engine",
}


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def is_builtin(api_version: str) -> bool:
    group = group_of(api_version)
    return "." not in group or group.endswith(".k8s.io")


@pytest.mark.parametrize("tree", TREES, ids=TREE_IDS)
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_tree_renders_and_validates_strictly(tree, version):
    docs = render(tree)
    assert docs
    for doc in docs:
        name = f"{doc['kind']} {doc['metadata']['name']}"
        if not is_builtin(doc["apiVersion"]):
            assert (group_of(doc["apiVersion"]), doc["kind"]) in CUSTOM_KINDS, f"{name}: unchecked custom resource"
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{name}: no schema for a built-in kind in {version}: {exc}")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is invalid for Kubernetes {version}: {exc.message} at {list(exc.path)}")


def test_strict_validation_catches_an_unknown_field():
    deployment = json.loads(json.dumps(of_kind(local(), "Deployment")["local-api-gateway"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, SCHEMA_VERSIONS[0], strict=True)


def test_checkov_finds_nothing_in_the_rendered_trees(tmp_path):
    assert CHECKOV.exists(), "checkov is not installed: run `make deploy-tools`"
    # Every object of every tree: each single-component combination is a subset of all-components.
    for tree in ("overlays/prod", "tests/all-components", "loadgenerator"):
        (tmp_path / f"{tree.replace('/', '-')}.yaml").write_text(yaml.safe_dump_all(render(MANIFESTS / tree)))
    done = subprocess.run(
        [*CHECKOV_ARGS, "--directory", str(tmp_path), "--skip-check", ",".join(CHECKOV_SKIPS)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout)
    failed = [
        f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})"
        for check in report["results"]["failed_checks"]
    ]
    assert failed == [], "\n".join(failed)
    assert report["summary"]["passed"] > 1000 and done.returncode == 0
    skipped = report["results"]["skipped_checks"]
    assert skipped and all(check["check_result"]["suppress_comment"].strip() for check in skipped), "skips say why"


def test_checkov_finds_nothing_in_the_load_generators_dockerfile():
    dockerfile = MANIFESTS / "loadgenerator" / "Dockerfile"
    done = subprocess.run(
        [str(CHECKOV), "--framework", "dockerfile", "--output", "json", "--skip-download", "--file", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    assert report["results"]["failed_checks"] == [] and report["summary"]["passed"] > 10, done.stdout[-2000:]


def test_local_overlay_names_and_entry_point():
    docs = local()
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] not in ("Namespace", "ClusterRole")} - {None} == {
        LOCAL_NAMESPACE
    }
    assert of_kind(docs, "Namespace").keys() == {LOCAL_NAMESPACE}
    entry = of_kind(docs, "Service")["local-load-balancer-service"]
    assert entry["spec"]["type"] == "NodePort"
    assert entry["spec"]["ports"] == [{"name": "http", "port": 7100, "targetPort": "http", "nodePort": 30700}]
    assert [s for s in of_kind(docs, "Service").values() if s["spec"]["type"] != "ClusterIP"] == [entry]
    replicas = {unprefixed(n): d["spec"]["replicas"] for n, d in of_kind(docs, "Deployment").items()}
    assert replicas == {
        "api-gateway": 2,
        "load-balancer": 2,
        "auth-service": 2,
        "user-service": 2,
        "dashboard-ui": 2,
        "redis": 1,
        "blog-service": 1,
        "cluster-monitor": 2,
        "edge-config": 1,
        "ops-mcp": 1,
    }
    assert of_kind(docs, "StatefulSet")["local-postgres"]["spec"]["serviceName"] == "local-postgres"


def test_every_service_runs_hardened_with_probes_and_graceful_stop():
    docs = local()
    deployments = of_kind(docs, "Deployment")
    for service in SERVICES:
        spec = pod_spec(deployments[LOCAL_PREFIX + service])
        (container,) = spec["containers"]
        assert container["image"] == f"titanium/{service}"
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        env = container_env(docs, deployments[LOCAL_PREFIX + service], container)
        # preStop keeps the pod serving while endpoints drop it; then the service's own drain must fit.
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert spec["terminationGracePeriodSeconds"] >= pre_stop + float(env["SHUTDOWN_TIMEOUT_S"]) + 2
        if service in DATABASE_SERVICES:
            assert container["startupProbe"]["httpGet"]["path"] == "/health"
        assert spec["automountServiceAccountToken"] is (service in API_CLIENTS)
        assert spec["serviceAccountName"] == LOCAL_PREFIX + service
    for workload in workloads(docs):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] >= 10000
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        mounted = {v["name"] for v in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert {"requests", "limits"} <= container["resources"].keys()
            assert {m["name"] for m in container.get("volumeMounts", [])} <= mounted | {"data"}


def test_no_service_runs_sqlite_and_the_jwt_secret_is_really_read():
    docs = local()
    deployments = of_kind(docs, "Deployment")
    secrets = of_kind(docs, "Secret")
    (secret_name,) = secrets
    for service in DATABASE_SERVICES:
        deployment = deployments[LOCAL_PREFIX + service]
        env = container_env(docs, deployment, pod_spec(deployment)["containers"][0])
        assert env["DATABASE_URL"].startswith("postgresql://titanium:local-only-postgres-password@local-postgres:")
    auth = deployments["local-auth-service"]
    assert container_env(docs, auth, pod_spec(auth)["containers"][0])["JWT_SECRET"].startswith("local-only-")
    assert (secret_name, "jwt-secret") in secret_references(docs)
    assert {name for name, _ in secret_references(docs)} == {secret_name}


def test_prod_generates_no_secret_and_names_the_operators_one():
    docs = render(MANIFESTS / "overlays" / "prod")
    assert of_kind(docs, "Secret") == {}
    keys = ("jwt-secret", "postgres-password", "admin-password", "collector-tokens")
    assert secret_references(docs) == {("titanium-secrets", key) for key in keys}
    guide = (REPO_ROOT / "docs" / "kubernetes.md").read_text()
    assert "kubectl -n titanium create secret generic titanium-secrets" in guide
    assert all(f"--from-literal={key}=" in guide for key in keys)
    assert all(s["spec"]["type"] == "ClusterIP" for s in of_kind(docs, "Service").values())
    kinds = {d["kind"] for d in docs}
    assert {"NetworkPolicy", "ServiceMonitor", "CronJob", "PodDisruptionBudget", "HorizontalPodAutoscaler"} <= kinds
    replicas = of_kind(docs, "Deployment")
    assert all(replicas[s]["spec"]["replicas"] >= 3 for s in ("load-balancer", "api-gateway", "auth-service"))


def test_each_combination_is_the_local_overlay_plus_its_components():
    overlay = yaml.safe_load((MANIFESTS / "overlays" / "local" / "kustomization.yaml").read_text())
    components = sorted(p.name for p in (MANIFESTS / "components").iterdir() if p.name != "local-cluster")
    tested = set()
    for tree in (MANIFESTS / "tests").iterdir():
        combination = yaml.safe_load((tree / "kustomization.yaml").read_text())
        for key in ("namespace", "namePrefix", "resources"):
            assert combination[key] == overlay[key], f"{tree.name}: {key} differs from overlays/local"
        assert combination["components"][: len(overlay["components"])] == overlay["components"]
        tested |= {Path(c).name for c in combination["components"][len(overlay["components"]) :]}
    assert sorted(tested) == components, "every component has a test combination"


def custom(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_custom_resources_select_what_exists():
    docs = render(MANIFESTS / "tests" / "all-components")
    services = of_kind(docs, "Service")
    monitors = custom(docs, "ServiceMonitor")
    monitored = set()
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        chosen = [s for s in services.values() if matches(selector, s["metadata"]["labels"])]
        if selector.get("app") == "edge-exporter":
            # edge-config creates these Services at run time, with exactly these labels and port name.
            from edge_config.kube import PORT_NAME, device_objects

            record = {"device_id": "d1", "config": {"device_type": "x", "ip_address": "10.0.0.9", "port": 9100}}
            created = device_objects(record, LOCAL_NAMESPACE)[0]
            assert matches(selector, created["metadata"]["labels"])
            assert [e["port"] for e in monitor["spec"]["endpoints"]] == [PORT_NAME]
            continue
        assert len(chosen) == 1, f"ServiceMonitor {monitor['metadata']['name']} selects {len(chosen)} Services"
        ports = {p["name"] for p in chosen[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
        assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}
        monitored.add(unprefixed(chosen[0]["spec"]["selector"]["app"]))
    assert monitored == set(SERVICES)

    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    policies = custom(docs, "PropagationPolicy")
    selected = set()
    for policy in policies:
        assert policy["metadata"]["name"].startswith(LOCAL_PREFIX)
        for selector in policy["spec"]["resourceSelectors"]:
            if "labelSelector" in selector:  # what a component adds, when it is there
                labels = selector["labelSelector"]["matchLabels"]
                selected |= {
                    (d["kind"], d["metadata"]["name"])
                    for d in docs
                    if d["kind"] == selector["kind"] and matches(labels, d["metadata"].get("labels", {}))
                }
                continue
            key = (selector["kind"], selector["name"])
            assert key in names or key == ("Secret", "titanium-secrets"), f"{policy['metadata']['name']}: {key}"
            selected.add(key)
        placement = policy["spec"]["placement"]
        assert set(placement["clusterAffinity"]["clusterNames"]) <= {"member1", "member2"}
    workloads_by_policy = {("Deployment", n) for n in of_kind(docs, "Deployment")} | {
        ("StatefulSet", n) for n in of_kind(docs, "StatefulSet")
    }
    assert workloads_by_policy <= selected, "every workload is placed"
    divided = next(p for p in policies if p["spec"]["placement"].get("replicaScheduling", {}).get("weightPreference"))
    weights = divided["spec"]["placement"]["replicaScheduling"]["weightPreference"]["staticWeightList"]
    assert {c for w in weights for c in w["targetCluster"]["clusterNames"]} == {"member1", "member2"}


def test_the_backup_writes_to_its_own_volume():
    docs = render(MANIFESTS / "tests" / "backup")
    (cron,) = of_kind(docs, "CronJob").values()
    spec = pod_spec(cron)
    claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"local-postgres-backups"}
    database_claims = {
        t["metadata"]["name"] for t in of_kind(docs, "StatefulSet")["local-postgres"]["spec"]["volumeClaimTemplates"]
    }
    assert claims.isdisjoint(database_claims) and "local-postgres-backups" in of_kind(docs, "PersistentVolumeClaim")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"


@pytest.mark.parametrize("tree", ["overlays/prod", "tests/all-components"])
def test_autoscalers_and_disruption_budgets_fit_their_deployments(tree):
    docs = render(MANIFESTS / tree)
    deployments = of_kind(docs, "Deployment")
    for hpa in of_kind(docs, "HorizontalPodAutoscaler").values():
        target = deployments[hpa["spec"]["scaleTargetRef"]["name"]]
        assert hpa["spec"]["minReplicas"] == target["spec"]["replicas"] < hpa["spec"]["maxReplicas"]
        (container,) = pod_spec(target)["containers"]
        assert "cpu" in container["resources"]["requests"], "CPU utilisation needs a CPU request"
    budgets = of_kind(docs, "PodDisruptionBudget").values()
    assert budgets
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        (chosen,) = [
            d for d in deployments.values() if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert chosen["spec"]["replicas"] > budget["spec"]["maxUnavailable"], "a budget must leave a pod running"
