"""`make run`'s command line (`python -m titanium_dev.run`): a bad setting stops it before anything starts."""

import os
import subprocess
import sys

import pytest

from titanium_dev.suite import REPO_ROOT


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"REPLICAS": "two"}, "REPLICAS=two"),
        ({"REPLICAS": "2", "DATABASE_URL": ""}, "REPLICAS=2 needs PostgreSQL"),
    ],
)
def test_a_bad_setting_stops_make_run_and_says_which(env, said, tmp_path):
    finished = subprocess.run(
        [sys.executable, "-m", "titanium_dev.run", "--data-dir", str(tmp_path)],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode != 0
    assert said in finished.stdout + finished.stderr
