"""skaffold.yaml, checked against what it names: no skaffold binary or schema can be installed here, so these
checks stand in for `skaffold diagnose` (artefacts, Dockerfiles, build arguments, manifests, port-forward)."""

import tomllib

from tests.support.deploy import (
    MANIFESTS,
    REPO_ROOT,
    SERVICES,
    of_kind,
    pod_spec,
    render,
    skaffold_modules,
)

MODULES = skaffold_modules()


def workspace_members() -> set[str]:
    return set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"])


def images_used(docs) -> set[str]:
    return {
        container["image"]
        for workload in docs
        if workload["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")
        for container in pod_spec(workload).get("initContainers", []) + pod_spec(workload)["containers"]
        if container["image"].startswith("titanium/")
    }


def test_a_current_schema_and_named_modules():
    assert set(MODULES) == {"titanium", "loadgenerator"}
    for module in MODULES.values():
        assert module["apiVersion"].startswith("skaffold/v4beta") and module["kind"] == "Config"
        assert module["deploy"] == {"kubectl": {}}
    assert MODULES["loadgenerator"]["requires"] == [{"configs": ["titanium"]}]


def test_every_artifact_builds_from_files_that_exist_with_a_workspace_member():
    members = workspace_members()
    for module in MODULES.values():
        for artifact in module["build"]["artifacts"]:
            context = REPO_ROOT / artifact["context"]
            assert context.is_dir(), artifact
            assert (context / artifact["docker"]["dockerfile"]).is_file(), artifact
            service = artifact["docker"].get("buildArgs", {}).get("SERVICE")
            if service is not None:
                assert service in members and artifact["image"] == f"titanium/{service}"
    app = {a["docker"]["buildArgs"]["SERVICE"] for a in MODULES["titanium"]["build"]["artifacts"]}
    assert app == set(SERVICES)


def test_every_built_image_is_deployed_and_every_deployed_image_is_built():
    for module in MODULES.values():
        built = {a["image"] for a in module["build"]["artifacts"]}
        paths = [module["manifests"]["kustomize"]["paths"]] + [
            p["manifests"]["kustomize"]["paths"] for p in module.get("profiles", [])
        ]
        for tree in paths:
            used = set().union(*(images_used(render(REPO_ROOT / path)) for path in tree))
            assert used == built, f"{module['metadata']['name']} {tree}: built {built}, deployed {used}"


def test_the_port_forward_names_a_rendered_service_and_its_port():
    app = MODULES["titanium"]
    assert app["manifests"]["kustomize"]["paths"] == ["k8s-manifests/overlays/local"]
    cases = [(app["portForward"], app["manifests"])] + [
        (p["portForward"], p["manifests"]) for p in app["profiles"] if "portForward" in p
    ]
    for forwards, manifests in cases:
        (forward,) = forwards
        docs = render(REPO_ROOT / manifests["kustomize"]["paths"][0])
        service = of_kind(docs, "Service")[forward["resourceName"]]
        assert service["metadata"]["namespace"] == forward["namespace"]
        assert forward["port"] in {p["port"] for p in service["spec"]["ports"]}
        assert forward["localPort"] == 7100
    assert app["portForward"][0]["resourceName"] == "local-load-balancer-service"


def test_profiles_are_named_and_replace_whole_sections():
    """Profiles are activated by name and replace whole fields; a JSON patch by list index would silently edit the
    wrong artifact when the list changes."""
    profiles = {p["name"]: p for p in MODULES["titanium"]["profiles"]}
    assert set(profiles) == {"prod", "network-policies"}
    assert all("patches" not in p for p in profiles.values())
    assert profiles["prod"]["manifests"]["kustomize"]["paths"] == ["k8s-manifests/overlays/prod"]
    network = profiles["network-policies"]["manifests"]["kustomize"]["paths"]
    assert network == ["k8s-manifests/tests/network-policies"]
    assert of_kind(render(REPO_ROOT / network[0]), "NetworkPolicy")


def test_the_load_generator_waits_for_the_load_balancer_and_reads_the_locustfile_settings():
    docs = render(MANIFESTS / "loadgenerator")
    (job,) = of_kind(docs, "Job").values()
    spec = pod_spec(job)
    (wait,) = spec["initContainers"]
    (locust,) = spec["containers"]
    lb_url = {e["name"]: e["value"] for e in wait["env"]}["LOAD_URL"]
    env = {e["name"]: e["value"] for e in locust["env"]}
    assert env["LOAD_URL"] == lb_url == "http://local-load-balancer-service:7100"
    assert "$LOAD_URL/ready" in wait["command"][-1]
    assert {"RATE", "DURATION", "SCENARIO"} <= env.keys()
    app = render(MANIFESTS / "overlays" / "local")
    assert (
        job["metadata"]["namespace"] == of_kind(app, "Service")["local-load-balancer-service"]["metadata"]["namespace"]
    )
