"""The walk-through of docs/adding-a-service.md, done: a toy service's catalogue entry is all the launcher, the
gateway and the load balancer's /stats need to start it, route to it and read it; and it leaves nothing behind."""

import os
import subprocess

import httpx

from tests.support.polling import eventually
from tests.support.servers import free_port
from tests.support.toy_service import TOY, catalogue_hook
from titanium_common.catalog import CATALOGUE
from titanium_dev.suite import REPO_ROOT, Suite, port_is_free

WANTED = ("toy-service", "api-gateway", "load-balancer")


def repository_state() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout


async def test_one_catalogue_entry_and_the_suite_starts_routes_to_and_probes_the_new_service(tmp_path):
    before = repository_state()
    catalogue = CATALOGUE.with_service(TOY, before="dashboard-ui")
    services = tuple(s for s in catalogue.start_order() if s.name in WANTED)
    assert [s.name for s in services] == list(WANTED)
    hook = catalogue_hook(tmp_path)
    ports = {name: free_port() for name in WANTED}
    python_path = os.pathsep.join(filter(None, [str(tmp_path), str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    suite = Suite(
        ports=ports,
        data_dir=tmp_path / "data",
        start_redis=False,
        echo=None,
        services=services,
        extra_env={"PYTHONPATH": python_path},
    )
    with suite:
        assert suite.env_for(services[1])["TOY_SERVICE_URL"] == suite.url("toy-service")
        async with httpx.AsyncClient(base_url=suite.url("load-balancer"), timeout=5) as client:
            # The gateway routes the new prefix (through the load balancer, as any client calls it).
            answer = await eventually(lambda: _ok(client.get("/api/toy/greeting")))
            assert answer.json() == {"greeting": "hello from the toy service"}
            # /stats reads it, in its catalogue place (the services not started here are there too, offline).
            stats = (await client.get("/stats")).json()
            assert [name for name in stats if name in catalogue.names()] == list(catalogue.names())
            toy = stats["toy-service"]
            assert toy["service"] == "toy-service" and toy["service_status"] == "online", toy
    # Nothing left behind: no process, no port taken, no file in the repository, no entry in its catalogue.
    assert all(not process.running for process in suite.processes.values())
    assert all(port_is_free(port) for port in ports.values())
    hook.unlink()
    assert repository_state() == before
    assert "toy-service" not in CATALOGUE.names()


async def _ok(request) -> httpx.Response | None:
    answer = await request
    return answer if answer.status_code == 200 else None
