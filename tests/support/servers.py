"""Real servers and processes on loopback for every test folder: an aiohttp or ASGI app served in the test's event
loop (`serving`, `AppServer`, the `servers` fixture), a service as its own process (`ServiceProcess`, the
`service_processes` fixture), free ports, and what the proxy tests' upstreams share (`body_digest`)."""

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import uvicorn
from aiohttp import web
from yarl import URL

from titanium_common.runner import KEEPALIVE_TIMEOUT_S, HeaderTimedAppRunner
from titanium_dev.suite import REPO_ROOT, free_port

__all__ = [
    "AppServer",
    "ServiceProcess",
    "body_digest",
    "free_port",
    "host_address",
    "raw_exchange",
    "servers",
    "service_processes",
    "serving",
]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class AppServer:
    """An aiohttp app on a loopback port (a free one unless given) that can be stopped and started again on the
    same port (a replica killed and brought back)."""

    def __init__(self, app: web.Application, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = port or free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    def make_url(self, path: str) -> URL:
        """The URL of `path` on this server (joined as aiohttp's test server joins it)."""
        return URL(self.url).join(URL(path))

    async def start(self) -> "AppServer":
        # The kit's runner, as the services run (a proxy's catch-all served without aiohttp's router); a short
        # shutdown: a request still held by a test's handler must not keep the test waiting.
        self.runner = HeaderTimedAppRunner(
            self.app, header_timeout_s=KEEPALIVE_TIMEOUT_S, access_log=None, shutdown_timeout=1.0
        )
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port, reuse_address=True).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def __aenter__(self) -> "AppServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def serving(app, port: int | None = None, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve an aiohttp app, or an ASGI app with its lifespan (uvicorn), until the block ends; yields its base URL."""
    if isinstance(app, web.Application):
        async with AppServer(app, port, host) as server:
            yield server.url
        return
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during start-up")
                await asyncio.sleep(0.01)
        yield base_url(host, port)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def servers():
    """`await servers(app, port=None, host="127.0.0.1")` serves an aiohttp app → its `AppServer`; all are stopped
    when the test ends."""
    started: list[AppServer] = []

    async def start(app: web.Application, port: int | None = None, host: str = "127.0.0.1") -> AppServer:
        server = await AppServer(app, port, host).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        await server.stop()


class ServiceProcess:
    """`python -m <module>` as a child process on a free loopback port, configured only by its environment, started
    once `ready_path` answers 200. Its output goes to a file (a pipe nobody reads could fill and stall it)."""

    def __init__(self, module: str, env: dict[str, str] | None = None, *, ready_path: str = "/health") -> None:
        self.module = module
        self.port = free_port()
        self.ready_path = ready_path
        quiet = {"HOST": "127.0.0.1", "PORT": str(self.port), "ENV": "test", "LOG_LEVEL": "WARNING"}
        self.env = os.environ | quiet | {"PYTHONUNBUFFERED": "1"} | (env or {})
        self.proc: asyncio.subprocess.Process | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - open while the process runs, closed by stop()

    @property
    def url(self) -> str:
        return base_url("127.0.0.1", self.port)

    async def start(self, timeout_s: float = START_TIMEOUT_S) -> "ServiceProcess":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            env=self.env,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with aiohttp.ClientSession() as http, asyncio.timeout(timeout_s):
                while True:
                    if self.proc.returncode is not None:
                        raise RuntimeError(f"{self.module} exited at start-up: {self.output()}")
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(self.url + self.ready_path) as answer:
                            if answer.status == 200:
                                return self
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise TimeoutError(f"{self.module}: {self.ready_path} not 200 within {timeout_s:.0f} s") from None

    def output(self) -> str:
        """What the process printed so far."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after STOP_TIMEOUT_S."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._log.close()

    async def __aenter__(self) -> "ServiceProcess":
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc) -> None:
        await self.stop()


@pytest.fixture
async def service_processes():
    """`await service_processes(module, env, ready_path="/health")` → a started `ServiceProcess`; all are stopped
    when the test ends."""
    started: list[ServiceProcess] = []

    async def start(module: str, env: dict[str, str] | None = None, **options) -> ServiceProcess:
        process = ServiceProcess(module, env, **options)
        started.append(process)
        return await process.start()

    yield start
    for process in reversed(started):
        await process.stop()


async def body_digest(request: web.Request) -> dict[str, object]:
    """`{"size", "sha256"}` of an aiohttp request's body, read as it streams (never held whole)."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


async def raw_exchange(port: int, request: bytes, host: str = "127.0.0.1", timeout_s: float = 10.0) -> bytes:
    """Send `request` as raw bytes (what no HTTP client would send) and read the answer until the server closes
    the connection or `timeout_s` passes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout_s):
                while chunk := await reader.read(65536):
                    answer += chunk
        return answer
    finally:
        writer.close()


def _bindable(family: int, address: str) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def host_address(version: int = 4) -> str | None:
    """An address of this host that is neither loopback nor link-local (what a device on a LAN has), or None.
    For tests of what must never hold a loopback address (Kubernetes Endpoints)."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    candidates: list[str] = []
    with contextlib.suppress(OSError):
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, family)]
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as udp:
        # No packet is sent: connecting a UDP socket only picks the source address of the default route.
        udp.connect(("192.0.2.1", 9) if version == 4 else ("2001:db8::1", 9))
        candidates.append(udp.getsockname()[0])
    for candidate in candidates:
        address = ipaddress.ip_address(candidate.split("%")[0])
        if not (address.is_loopback or address.is_link_local) and _bindable(family, str(address)):
            return str(address)
    return None
