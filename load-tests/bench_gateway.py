"""Gateway benchmark: wrk against real processes on loopback. Numbers to read, never asserted.

Chains, all ending at the same one-process FastAPI endpoint (uvicorn):
  direct            wrk → FastAPI
  titanium          wrk → load balancer → api-gateway → FastAPI        (the suite's real request path)
  bare-aiohttp      wrk → bare aiohttp proxy → bare aiohttp proxy → FastAPI   (the floor for two aiohttp hops)
and, re-measuring the design's choice of aiohttp for the gateway, with the load balancer in front of each:
  lb+fastapi-httpx    LB → FastAPI relay with one shared httpx.AsyncClient → FastAPI
  lb+fastapi-aiohttp  LB → FastAPI relay with one shared aiohttp.ClientSession → FastAPI
  lb+bare-aiohttp     LB → bare aiohttp proxy → FastAPI

Chains take turns for several rounds; besides RPS and latency, each hop's CPU time per request is read from /proc,
which other load on the machine barely moves (RPS does).

Run: `make bench` (all bench_*.py), or `.venv/bin/python load-tests/bench_gateway.py [--rounds 3] [--quick]`.
The same file also serves the helper processes: `bench_gateway.py serve <role> --port N [--upstream URL]`.
"""

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PATH = "/api/users/bench?x=1"
START_TIMEOUT_S = 30.0
# Everything logs at WARNING: at thousands of requests per second an access-log line each would be measured too.
QUIET_ENV = {"LOG_LEVEL": "WARNING", "ENV": "test"}

# ---------------------------------------------------------------- helper processes (the `serve` roles)


def serve_fastapi_backend(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/{path:path}")
    async def answer(path: str) -> dict:
        return {"id": 1, "username": "bench", "path": path}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _forwarded_headers(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in ("host", "connection", "content-length")}


def serve_fastapi_relay(port: int, upstream: str, client: str) -> None:
    """A FastAPI app forwarding every request with one shared client (httpx or aiohttp), whole bodies."""
    import contextlib as ctx

    import uvicorn
    from fastapi import FastAPI, Request, Response

    state: dict = {}

    @ctx.asynccontextmanager
    async def lifespan(app):
        if client == "httpx":
            import httpx

            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            state["client"] = httpx.AsyncClient(base_url=upstream, limits=limits, timeout=5.0)
        else:
            import aiohttp

            state["client"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
        yield
        await (state["client"].aclose() if client == "httpx" else state["client"].close())

    app = FastAPI(lifespan=lifespan)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def relay(request: Request, path: str) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = _forwarded_headers(request.headers)
        body = await request.body()
        if client == "httpx":
            r = await state["client"].request(request.method, target, headers=headers, content=body)
            return Response(r.content, r.status_code, media_type=r.headers.get("content-type"))
        async with state["client"].request(request.method, upstream + target, headers=headers, data=body) as r:
            return Response(await r.read(), r.status, media_type=r.headers.get("Content-Type"))

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")


def serve_bare_aiohttp(port: int, upstream: str) -> None:
    """The least an aiohttp proxy can be: no middleware, no accounting, whole bodies."""
    import asyncio

    import aiohttp
    import uvloop
    from aiohttp import web

    async def session_ctx(app):
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), auto_decompress=False)
        yield
        await app["session"].close()

    async def relay(request: web.Request) -> web.Response:
        body = await request.read()
        headers = _forwarded_headers(request.headers)
        async with request.app["session"].request(
            request.method, upstream + request.raw_path, headers=headers, data=body or None
        ) as r:
            return web.Response(body=await r.read(), status=r.status, content_type=r.content_type)

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", relay)
    # The same event loop as the gateway, so that the comparison measures what Titanium adds, not the loop.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---------------------------------------------------------------- process and wrk helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Child processes for one chain; all stopped (TERM, then KILL) when the block ends."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen, Path]] = []
        self.logs = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
        self.pids: dict[str, int] = {}

    def cpu_seconds(self, name: str) -> float:
        """User + system CPU time used so far by the named process (Linux /proc)."""
        fields = Path(f"/proc/{self.pids[name]}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, probe: str = "/health") -> str:
        port = free_port()
        log = self.logs / f"{name}.log"
        full_env = {**os.environ, **QUIET_ENV, "PORT": str(port), "HOST": "127.0.0.1", **(env or {})}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [a.replace("{port}", str(port)) for a in argv],
                env=full_env,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.children.append((name, process, log))
        self.pids[name] = process.pid
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited at start-up:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(base + probe, timeout=1):
                    return base
            except urllib.error.HTTPError:
                return base
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer within {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-2000:]}")

    def stop(self) -> None:
        for _, process, _ in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        for _, process, _ in self.children:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.children.clear()


@contextlib.contextmanager
def processes() -> Iterator[Processes]:
    group = Processes()
    try:
        yield group
    finally:
        group.stop()
        shutil.rmtree(group.logs, ignore_errors=True)


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    load: float
    # CPU time each hop of the chain spent per request, in microseconds: unlike RPS, barely moved by other load.
    cpu_us: dict[str, float]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def wrk(url: str, *, duration_s: int, connections: int, threads: int) -> tuple[float, float, float, int, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx plus socket errors, requests) from one wrk run."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    if socket_errors := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(n) for n in socket_errors.groups())
    return rps, p50, p99, errors, requests


@dataclass
class Chain:
    url: str
    hops: list[str]


def measure(group: Processes, chain: Chain, args: argparse.Namespace) -> Result:
    load = os.getloadavg()[0]
    before = {hop: group.cpu_seconds(hop) for hop in chain.hops}
    rps, p50, p99, errors, requests = wrk(
        chain.url + PATH, duration_s=args.duration, connections=args.connections, threads=args.threads
    )
    cpu_us = {hop: (group.cpu_seconds(hop) - before[hop]) / max(requests, 1) * 1e6 for hop in chain.hops}
    return Result(rps, p50, p99, errors, load, cpu_us)


# ---------------------------------------------------------------- the chains


def me(*role: str) -> list[str]:
    return [sys.executable, __file__, "serve", *role, "--port", "{port}"]


def service(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def start_chains(group: Processes, quick: bool) -> dict[str, Chain]:
    """Every chain, started once; all share one FastAPI endpoint, and only one chain is loaded at a time."""
    backend = group.start("fastapi", me("fastapi-backend"))

    def relay(name: str, role: str, upstream: str) -> str:
        return group.start(name, [*me(role), "--upstream", upstream])

    def lb(name: str, target: str) -> str:
        return group.start(name, service("load_balancer"), {"GATEWAY_URLS": target})

    gateway = group.start("api-gateway", service("api_gateway"), {"USER_SERVICE_URL": backend})
    chains = {
        "direct": Chain(backend, ["fastapi"]),
        "titanium": Chain(lb("load-balancer", gateway), ["load-balancer", "api-gateway", "fastapi"]),
        "bare-aiohttp": Chain(
            relay("bare-outer", "bare-aiohttp", relay("bare-inner", "bare-aiohttp", backend)),
            ["bare-outer", "bare-inner", "fastapi"],
        ),
    }
    if not quick:
        for role in ("fastapi-httpx", "fastapi-aiohttp", "bare-aiohttp"):
            middle = relay(role, role, backend)
            chains[f"lb+{role}"] = Chain(lb(f"lb-{role}", middle), [f"lb-{role}", role, "fastapi"])
    return chains


def run_rounds(group: Processes, chains: dict[str, Chain], args: argparse.Namespace) -> dict[str, list[Result]]:
    """Chains take turns, round after round: a burst of load from elsewhere hits them all alike."""
    for chain in chains.values():
        wrk(chain.url + PATH, duration_s=2, connections=8, threads=1)  # warm-up: pools filled, code paths hot
    results: dict[str, list[Result]] = {name: [] for name in chains}
    for n in range(1, args.rounds + 1):
        print(f"round {n}/{args.rounds}", flush=True)
        for name, chain in chains.items():
            r = measure(group, chain, args)
            results[name].append(r)
            cpu = "  ".join(f"{hop} {us:.0f}" for hop, us in r.cpu_us.items())
            print(
                f"  {name:<18} {r.rps:6.0f} RPS  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  errors {r.errors}"
                f"  load {r.load:.1f}  CPU us/req: {cpu}",
                flush=True,
            )
    return results


def report(results: dict[str, list[Result]]) -> None:
    median = statistics.median
    print(f"\nmedians over {len(results['direct'])} rounds:")
    for name, runs in results.items():
        rps, p50, p99 = (median([getattr(r, f) for r in runs]) for f in ("rps", "p50_ms", "p99_ms"))
        cpu = "  ".join(f"{hop} {median([r.cpu_us[hop] for r in runs]):.0f}" for hop in runs[0].cpu_us)
        print(f"  {name:<18} {rps:6.0f} RPS  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  CPU us/req: {cpu}")

    def ratio(a: str, b: str) -> float:
        # Paired by round, so that both sides of a ratio saw the same background load.
        return median([x.rps / y.rps for x, y in zip(results[a], results[b], strict=True)])

    titanium = results["titanium"]
    print(f"titanium vs FastAPI direct:        {ratio('titanium', 'direct'):6.1%} of the RPS")
    print(f"titanium vs bare aiohttp two hops: {ratio('titanium', 'bare-aiohttp'):6.1%} of the RPS (target >= 90 %)")
    print(
        f"titanium: {median([r.rps for r in titanium]):.0f} RPS (target >= 2000), "
        f"p99 {median([r.p99_ms for r in titanium]):.1f} ms (target <= 30 ms)"
    )
    if "lb+fastapi-httpx" in results:
        base = "lb+bare-aiohttp"
        print(f"middle hop behind the load balancer, RPS relative to {base}:")
        for name in ("lb+fastapi-httpx", "lb+fastapi-aiohttp", "titanium"):
            print(f"  {name:<18} {ratio(name, base):6.1%}")
    loads = [r.load for runs in results.values() for r in runs]
    print(
        f"1-minute load average during the runs: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs"
        " (other work shares them: trust the CPU per request and the paired ratios before absolute RPS)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve")
    serve.add_argument("role", choices=["fastapi-backend", "fastapi-httpx", "fastapi-aiohttp", "bare-aiohttp"])
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--upstream", default="")
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="only direct, titanium and bare-aiohttp")
    args = parser.parse_args()

    if args.command == "serve":
        if args.role == "fastapi-backend":
            serve_fastapi_backend(args.port)
        elif args.role == "bare-aiohttp":
            serve_bare_aiohttp(args.port, args.upstream)
        else:
            serve_fastapi_relay(args.port, args.upstream, args.role.removeprefix("fastapi-"))
        return 0

    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench installs it)", file=sys.stderr)
        return 1
    print(f"api-gateway bench: wrk -t{args.threads} -c{args.connections} -d{args.duration}s GET {PATH}", flush=True)
    with processes() as group:
        results = run_rounds(group, start_chains(group, args.quick), args)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
