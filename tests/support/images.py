"""The suite's images and the stand-ins for the official ones, built in a Docker Engine (tests/support/engine.py).

Nothing can be pulled here, so every image a `FROM` line of the Dockerfile or an `image:` of docker-compose.yml
names is made first, under that name, from what Debian, PyPI and this machine have:
- the Python base: a `debootstrap --variant=minbase bookworm` root file system with Debian's python3 (3.11),
  trimmed as slim images are (no apt lists or caches, docs, man pages, locales), and this machine's CA bundle
  (the official image has ca-certificates; this network's TLS proxy signs with its own CA, which uv and npm are
  pointed at through `SSL_CERT_FILE` and `NODE_EXTRA_CA_CERTS`, as on the machine itself), `docker import`ed;
- the uv image: the uv binary from PyPI's uv wheel, at the version the Dockerfile names;
- Node, PostgreSQL and Redis: the Python stand-in with this machine's node and npm, or Debian's postgresql or
  redis-server and an entrypoint honouring what the official image's honours (tests/support/stand-ins/).

They stay in the engine's data root (outside the checkout), so they are made once per machine. The suite's own
images are then built by Compose (BuildKit) from the real Dockerfile, with the layer cache.
`python -m tests.support.engine images [SERVICE ...]` does both (what `make images` runs).
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.deploy import COMPOSE_FILE, ENV_EXAMPLE, REPO_ROOT, compose, workspace_members
from tests.support.engine import CACHE, Engine

DOCKERFILE = REPO_ROOT / "Dockerfile"
STAND_INS = Path(__file__).with_name("stand-ins")
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
SLIM_TRIM = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
KINDS = ("python", "uv", "node", "postgres", "redis")
BUILD_TIMEOUT_S = 1800


def base_images() -> dict[str, str]:
    """The official images the Dockerfile's stages start FROM and the compose file's default services run, keyed by
    kind."""
    stages: set[str] = set()
    named: list[str] = []
    for match in re.finditer(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", DOCKERFILE.read_text(), re.MULTILINE | re.IGNORECASE):
        if match.group(1) not in stages:
            named.append(match.group(1))
        if match.group(2):
            stages.add(match.group(2))
    # The opt-in profiles' tools (Prometheus, Grafana, Jaeger) get no stand-in: the suite runs without them.
    named += [s["image"] for s in compose()["services"].values() if "build" not in s and not s.get("profiles")]
    bases: dict[str, str] = {}
    for image in named:
        kind = next((k for k in KINDS if k in image.rsplit("/", 1)[-1]), None)
        if kind is None:
            raise ValueError(f"{image}: no stand-in for it")
        bases[kind] = image
    return bases


def _import_root(engine: Engine, root: Path, name: str, *changes: str) -> None:
    """A root file system as a one-layer image (`docker import`), with Dockerfile-style config lines."""
    change_args = [arg for change in changes for arg in ("--change", change)]
    with subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE) as tar:
        done = subprocess.run(
            ["docker", "import", *change_args, "-", name], stdin=tar.stdout, env=engine.env, capture_output=True
        )
    if tar.returncode != 0 or done.returncode != 0:
        raise RuntimeError(f"docker import {name} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")


def make_python_base(engine: Engine, name: str, _bases: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        root = Path(work) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(root),
             "http://deb.debian.org/debian"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        for path in SLIM_TRIM:
            shutil.rmtree(root / path, ignore_errors=True)
        (root / CA_BUNDLE.parent.relative_to("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy2(CA_BUNDLE, root / CA_BUNDLE.relative_to("/"))
        _import_root(
            engine, root, name, "ENV LANG=C.UTF-8", f"ENV SSL_CERT_FILE={CA_BUNDLE}",
            f"ENV NODE_EXTRA_CA_CERTS={CA_BUNDLE}", 'CMD ["python3"]',
        )  # fmt: skip


def make_uv_image(engine: Engine, name: str, _bases: dict[str, str]) -> None:
    version = name.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        venv = Path(work) / "venv"
        uv = shutil.which("uv") or str(REPO_ROOT / ".tools" / "bin" / "uv")
        subprocess.run([uv, "venv", "--quiet", str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv), f"uv=={version}"], check=True)
        root = Path(work) / "rootfs"
        root.mkdir()
        shutil.copy2(venv / "bin" / "uv", root / "uv")
        _import_root(engine, root, name, 'ENTRYPOINT ["/uv"]')


def _build_stand_in(engine: Engine, kind: str, name: str, bases: dict[str, str], context: Path) -> None:
    # The classic builder: the stand-ins need nothing BuildKit adds, and it needs no buildx plugin.
    done = subprocess.run(
        ["docker", "build", "--build-arg", f"BASE={bases['python']}", "--tag", name, str(context)],
        env=engine.env | {"DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the {kind} stand-in {name} failed:\n{(done.stdout + done.stderr)[-4000:]}")


def make_node_base(engine: Engine, name: str, bases: dict[str, str]) -> None:
    node, npm = Path(shutil.which("node") or "/usr/bin/node").resolve(), Path("/usr/lib/node_modules/npm")
    if not npm.is_dir():
        raise FileNotFoundError(f"{npm} is missing: the Node stand-in is this machine's node and npm")
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        context = Path(work)
        shutil.copy2(STAND_INS / "node" / "Dockerfile", context / "Dockerfile")
        shutil.copy2(node, context / "node")
        shutil.copytree(npm, context / "npm", symlinks=True)
        _build_stand_in(engine, "node", name, bases, context)


def make_server_image(kind: str):
    def make(engine: Engine, name: str, bases: dict[str, str]) -> None:
        _build_stand_in(engine, kind, name, bases, STAND_INS / kind)

    return make


MAKERS = {
    "python": make_python_base,
    "uv": make_uv_image,
    "node": make_node_base,
    "postgres": make_server_image("postgres"),
    "redis": make_server_image("redis"),
}


def ensure_stand_ins(engine: Engine) -> dict[str, float]:
    """Make the stand-ins the engine does not have yet (the Python base first: the others start from it); seconds
    each one took (nothing when all were there)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    bases = base_images()
    took: dict[str, float] = {}
    for kind in KINDS:
        if engine.image_exists(bases[kind]):
            continue
        started = time.monotonic()
        MAKERS[kind](engine, bases[kind], bases)
        took[kind] = time.monotonic() - started
    return took


def image_size(engine: Engine, name: str) -> int:
    return int(engine.docker("image", "inspect", "--format", "{{.Size}}", name).stdout)


def build_suite_images(engine: Engine, services: list[str], env_file: Path = ENV_EXAMPLE) -> float:
    """`docker compose build` of the services' images (BuildKit, the layer cache); the seconds it took."""
    started = time.monotonic()
    done = subprocess.run(
        ["docker", "compose", "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE),
         "--env-file", str(env_file), "build", *services],
        env=engine.env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"docker compose build failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return time.monotonic() - started


def main(engine: Engine, services: list[str]) -> int:
    for kind, seconds in ensure_stand_ins(engine).items():
        print(f"stand-in {kind} image made in {seconds:.0f} s")
    services = services or workspace_members(with_script=True)
    seconds = build_suite_images(engine, services)
    for service in services:
        print(f"titanium/{service}: {image_size(engine, f'titanium/{service}') / 1e6:.0f} MB")
    print(f"built in {seconds:.0f} s")
    return 0
