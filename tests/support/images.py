"""The suite's container images built and started without a Docker engine: Debian's buildah runs the real Dockerfile.

No base image can be pulled here, so stand-ins are committed first under the names the Dockerfile's `FROM` lines
use, then `buildah bud` runs every step of the Dockerfile for real:
- the Python base: a `debootstrap --variant=minbase bookworm` root file system with Debian's python3 (3.11),
  trimmed as slim images are (no apt lists or caches, docs, man pages, locales), and this machine's CA bundle
  (the official image has ca-certificates; this network's TLS proxy signs with its own CA, which uv and npm are
  pointed at through `SSL_CERT_FILE` and `NODE_EXTRA_CA_CERTS`, as on the machine itself);
- the uv image: the uv binary from PyPI's uv wheel, at the version the Dockerfile names;
- the Node base: the Python stand-in with this machine's node and npm (only `npm ci` runs in it).

Everything lives in one store outside the checkout, `~/.cache/titanium/buildah/` (`TITANIUM_IMAGE_CACHE` moves it;
overlay storage), as uv keeps its cache: stand-ins are made once and kept, images are rebuilt through buildah's layer
cache, so a second run, or a fresh clone on the same machine, with unchanged inputs reuses every layer.
`python -m tests.support.images [SERVICE ...]` builds images the same way (what `make images` does here).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.deploy import REPO_ROOT, workspace_members

DOCKERFILE = REPO_ROOT / "Dockerfile"
CACHE = Path(
    os.environ.get("TITANIUM_IMAGE_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "titanium" / "buildah"
)
# overlay on this machine's ext4 works as root and shares layers; vfs copies the whole tree for every step
# (measured: over 5 min and 8 GB for one image, against about a minute cold and 6 GB for all of them here).
STORE_ARGS = ("--root", str(CACHE / "storage"), "--runroot", str(CACHE / "run"), "--storage-driver", "overlay")
IMAGE_PREFIX = "titanium/"
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
SLIM_TRIM = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)


def buildah(*args: str, check: bool = True, timeout: float = 900, merged: bool = False) -> subprocess.CompletedProcess:
    """buildah on the project's store; merged: stderr into stdout, in order (a build's steps and their results)."""
    result = subprocess.run(
        ["buildah", *STORE_ARGS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        output = result.stdout if merged else result.stderr
        raise RuntimeError(f"buildah {' '.join(args)} failed ({result.returncode}):\n{output[-4000:]}")
    return result


def full_name(name: str) -> str:
    """The name buildah stores an image under: Docker Hub official images (the FROM lines) get docker.io/library/,
    the suite's own (titanium/...) localhost/."""
    first = name.split("/", 1)[0]
    if "/" not in name:
        return f"docker.io/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"localhost/{name}"


def image_exists(name: str) -> bool:
    return buildah("inspect", "--type", "image", full_name(name), check=False).returncode == 0


def image_config(name: str) -> dict:
    """The OCI image config (user, env, cmd, healthcheck, labels...) of a built image."""
    return json.loads(buildah("inspect", "--type", "image", full_name(name)).stdout)


def base_images() -> dict[str, str]:
    """The images the Dockerfile's stages start FROM (stage names excluded), keyed python/uv/node."""
    stages: set[str] = set()
    bases: dict[str, str] = {}
    for match in re.finditer(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", DOCKERFILE.read_text(), re.MULTILINE | re.IGNORECASE):
        image, stage = match.group(1), match.group(2)
        if image not in stages:
            kind = next((k for k in ("python", "uv", "node") if k in image.rsplit("/", 1)[-1]), None)
            if kind is None:
                raise ValueError(f"Dockerfile FROM {image}: no stand-in for it")
            bases[kind] = image
        if stage:
            stages.add(stage)
    return bases


def _commit_root(root: Path, name: str, *config: str) -> None:
    container = buildah("from", "scratch").stdout.strip()
    try:
        mount = buildah("mount", container).stdout.strip()
        subprocess.run(["cp", "-a", f"{root}/.", mount], check=True)
        buildah("umount", container)
        if config:
            buildah("config", *config, container)
        buildah("commit", "--rm", container, full_name(name))
    except BaseException:
        buildah("rm", container, check=False)
        raise


def make_python_base(name: str) -> None:
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        root = Path(work) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3",
                "bookworm",
                str(root),
                "http://deb.debian.org/debian",
            ],
            check=True,
            capture_output=True,
        )
        for path in SLIM_TRIM:
            shutil.rmtree(root / path, ignore_errors=True)
        (root / CA_BUNDLE.parent.relative_to("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy2(CA_BUNDLE, root / CA_BUNDLE.relative_to("/"))
        _commit_root(
            root, name, "--env", "LANG=C.UTF-8", "--env", f"SSL_CERT_FILE={CA_BUNDLE}",
            "--env", f"NODE_EXTRA_CA_CERTS={CA_BUNDLE}", "--cmd", "python3",
        )  # fmt: skip


def make_uv_image(name: str) -> None:
    version = name.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        venv = Path(work) / "venv"
        uv = shutil.which("uv") or str(REPO_ROOT / ".tools" / "bin" / "uv")
        subprocess.run([uv, "venv", "--quiet", str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv), f"uv=={version}"], check=True)
        root = Path(work) / "rootfs"
        root.mkdir()
        shutil.copy2(venv / "bin" / "uv", root / "uv")
        _commit_root(root, name, "--entrypoint", '["/uv"]')


def make_node_base(name: str, python_base: str) -> None:
    node, npm = Path(shutil.which("node") or "/usr/bin/node").resolve(), Path("/usr/lib/node_modules/npm")
    if not npm.is_dir():
        raise FileNotFoundError(f"{npm} is missing: the Node stand-in is this machine's node and npm")
    container = buildah("from", "--pull=never", full_name(python_base)).stdout.strip()
    try:
        buildah("copy", container, str(node), "/usr/local/bin/node")
        buildah("copy", container, str(npm), "/usr/local/lib/node_modules/npm")
        buildah("run", "--isolation", "chroot", container, "--", "ln", "-s",
                "../lib/node_modules/npm/bin/npm-cli.js", "/usr/local/bin/npm")  # fmt: skip
        buildah("commit", "--rm", container, full_name(name))
    except BaseException:
        buildah("rm", container, check=False)
        raise


def ensure_base_images() -> dict[str, float]:
    """Commit the stand-ins that are not in the store yet; seconds each one took (nothing when all were there)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    bases = base_images()
    took: dict[str, float] = {}
    for kind, maker in (("python", make_python_base), ("uv", make_uv_image), ("node", None)):
        name = bases[kind]
        if image_exists(name):
            continue
        started = time.monotonic()
        if maker is None:
            make_node_base(name, bases["python"])
        else:
            maker(name)
        took[kind] = time.monotonic() - started
    return took


# Where a step's log starts in `buildah bud` output ("[3/4] STEP 17/20: RUN ..." in multi-stage builds).
STEP_START = r"^(?=(?:\[\d+/\d+\] )?STEP \d+/\d+: )"


@dataclass(frozen=True)
class Build:
    service: str
    image: str
    seconds: float
    size_bytes: int
    output: str

    def step(self, needle: str) -> str:
        """The build log of the first step whose instruction contains `needle`."""
        steps = re.split(STEP_START, self.output, flags=re.MULTILINE)
        return next(step for step in steps if needle in step.split("\n", 1)[0])

    @property
    def steps_cached(self) -> int:
        return self.output.count("--> Using cache")

    def remove(self) -> None:
        """Delete the image and the intermediate images only this build made (not the cache others reuse)."""
        buildah("rmi", full_name(self.image), check=False)
        steps = re.split(STEP_START, self.output, flags=re.MULTILINE)
        made = [
            m.group(1)
            for step in steps
            if "Using cache" not in step
            for m in re.finditer(r"^--> ([0-9a-f]{10,64})$", step, re.MULTILINE)
        ]
        for image_id in reversed(made):
            buildah("rmi", image_id, check=False)


SIZE_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def image_size(name: str) -> int:
    """The image's layers as stored, unpacked (what `docker images` calls its size; buildah prints it in decimal
    units, e.g. "234 MB")."""
    number, unit = json.loads(buildah("images", "--json", full_name(name)).stdout)[0]["size"].split()
    return int(float(number) * SIZE_UNITS[unit])


def build_image(service: str, context: Path = REPO_ROOT, tag: str | None = None) -> Build:
    """`buildah bud` of the context's Dockerfile for one workspace member, with the layer cache; Docker's image
    format, as `docker build` writes it (the OCI format has no HEALTHCHECK)."""
    image = tag or IMAGE_PREFIX + service
    started = time.monotonic()
    result = buildah(
        "bud", "--pull=never", "--isolation", "chroot", "--network", "host", "--format", "docker",
        "--layers", "--force-rm",
        "--build-arg", f"SERVICE={service}", "--tag", image, "--file", str(context / "Dockerfile"), str(context),
        merged=True,
    )  # fmt: skip
    seconds = time.monotonic() - started
    return Build(service, image, seconds, image_size(image), result.stdout)


def main(argv: list[str]) -> int:
    services = argv or workspace_members(with_script=True)
    for kind, seconds in ensure_base_images().items():
        print(f"stand-in {kind} base committed in {seconds:.0f} s")
    for service in services:
        build = build_image(service)
        print(
            f"{build.image}: {build.seconds:.1f} s, {build.size_bytes / 1e6:.0f} MB, {build.steps_cached} steps cached"
        )
    return 0


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    sys.exit(main(sys.argv[1:]))


def listening_socket_owner(port: int) -> tuple[int, int] | None:
    """(uid, inode) of the socket listening on a TCP port on this host, from /proc/net/tcp{,6}; None if none."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, uid, inode = fields[1], fields[3], int(fields[7]), int(fields[9])
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return uid, inode
    return None


def pid_of_socket(inode: int) -> int | None:
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


class Container:
    """A working container of a built image, its start command run by `buildah run` on the host's network (the
    only way to start an image here: podman run and crun fail on this machine)."""

    def __init__(self, name: str, image: str, env: dict[str, str], port: int, log_path: Path) -> None:
        self.name, self.image, self.env, self.port, self.log_path = name, image, env, port, log_path
        self.config = image_config(image)
        self.id = ""
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    @property
    def docker_config(self) -> dict:
        """The image's Docker config: User, Env, Cmd, Healthcheck, StopSignal, Labels..."""
        return self.config["Docker"]["config"]

    def run_args(self, *command: str) -> list[str]:
        env = [arg for key, value in self.env.items() for arg in ("--env", f"{key}={value}")]
        return [
            "buildah",
            *STORE_ARGS,
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            *env,
            self.id,
            "--",
            *command,
        ]

    def start(self) -> None:
        buildah("rm", self.name, check=False)
        self.id = buildah("from", "--pull=never", "--name", self.name, full_name(self.image)).stdout.strip()
        command = [*(self.docker_config.get("Entrypoint") or []), *(self.docker_config.get("Cmd") or [])]
        self.started_at = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self.run_args(*command), stdout=log, stderr=subprocess.STDOUT)

    def exec(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Another process in the same container (as the image's user, with the same environment)."""
        return subprocess.run(self.run_args(*command), capture_output=True, text=True, timeout=timeout)

    def service_pid(self) -> int | None:
        owner = listening_socket_owner(self.port)
        return pid_of_socket(owner[1]) if owner else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self, timeout: float) -> int | None:
        """SIGTERM to the service (what `docker stop` sends, the image's STOPSIGNAL); its exit code, or None if it
        had to be killed after `timeout`."""
        code = None
        if self.process is not None and self.process.poll() is None:
            pid = self.service_pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        elif self.process is not None:
            code = self.process.returncode
        if self.id:
            buildah("rm", self.id, check=False)
        return code
