"""Fixtures every test folder shares."""

import os
import shutil
import tempfile

# A service built with default settings would keep its SQLite files in DATA_DIR: never the developer's `.data/`.
_TEST_DATA_DIR = tempfile.mkdtemp(prefix="titanium-test-data-")
os.environ["DATA_DIR"] = _TEST_DATA_DIR


def pytest_unconfigure(config):
    shutil.rmtree(_TEST_DATA_DIR, ignore_errors=True)


# Shared fixtures live in tests/support/ (databases, Redis, the Kubernetes API double); register them here.
pytest_plugins: list[str] = [
    # servers first: the other plugins import it.
    "tests.support.servers",
    "tests.support.databases",
    "tests.support.browser",
    "tests.support.kubernetes",
]
