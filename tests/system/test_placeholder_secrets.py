"""`cp .env.example .env` without editing it: each service that reads one of the example's secrets refuses to start
outside development, and its log line names the variable to change."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deploy import ENV_EXAMPLE
from tests.support.servers import free_port
from titanium_common.runner import EXIT_CONFIG

EXAMPLE = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#"))
DATABASE_URL = f"postgresql://titanium:{EXAMPLE['POSTGRES_PASSWORD']}@127.0.0.1:1/titanium"


@pytest.mark.parametrize(
    ("service", "env", "named"),
    [
        ("auth-service", {"JWT_SECRET": EXAMPLE["JWT_SECRET"]}, "JWT_SECRET"),
        ("user-service", {"ADMIN_PASSWORD": EXAMPLE["ADMIN_PASSWORD"]}, "ADMIN_PASSWORD"),
        ("blog-service", {"DATABASE_URL": DATABASE_URL}, "POSTGRES_PASSWORD"),
    ],
)
def test_the_example_secrets_are_refused_at_start_up(service, env, named, tmp_path):
    done = subprocess.run(
        [str(Path(sys.executable).with_name(service))],
        env={"PATH": "/usr/bin:/bin", "ENV": "production", "PORT": str(free_port()), "LOG_FORMAT": "json"} | env,
        cwd=tmp_path,  # no .env of the checkout's
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_CONFIG, done.stdout[-2000:] + done.stderr[-2000:]
    assert "refusing to start" in done.stdout and named in done.stdout, done.stdout[-2000:]
