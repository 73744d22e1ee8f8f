"""The real suite, started by the same launcher as `make run`, on free ports and private data."""

from pathlib import Path

import pytest

from titanium_common.suite import SERVICES, Suite, free_port

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
# The first admin, created by user-service at start-up (for the tests that change roles).
ADMIN = ("admin", "system-admin-password")


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    OUTPUT.mkdir(exist_ok=True)
    ports = {spec.name: free_port() for spec in SERVICES}
    with (
        open(OUTPUT / "system-suite.log", "w") as log,
        Suite(
            ports=ports,
            data_dir=tmp_path_factory.mktemp("data"),
            echo=log,
            extra_env={"ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1]},
        ) as running,
    ):
        yield running
