"""Gateway benchmark: wrk against real processes on loopback. Numbers to read, never asserted.

Chains, all ending at the same one-process FastAPI endpoint (uvicorn):
  direct            wrk → FastAPI
  titanium          wrk → load balancer → api-gateway → FastAPI        (the suite's real request path)
  bare-aiohttp      wrk → minimal aiohttp proxy → minimal aiohttp proxy → FastAPI  (the floor for two hops)
and, re-measuring the choice of aiohttp (docs/decisions/0001) for the gateway, with the load balancer in front of each:
  lb+fastapi-httpx    LB → FastAPI relay with one shared httpx.AsyncClient → FastAPI
  lb+fastapi-aiohttp  LB → FastAPI relay with one shared aiohttp.ClientSession → FastAPI
  lb+bare-aiohttp     LB → minimal aiohttp proxy → FastAPI

Chains take turns for several rounds; besides RPS and latency, each hop's CPU time per request is read from /proc,
which other load on the machine barely moves (RPS does).

Run: `make bench` (all bench_*.py), or `.venv/bin/python load-tests/bench_gateway.py [--rounds 3] [--quick]`.
The same file also serves the helper processes: `bench_gateway.py serve <role> --port N [--upstream URL]`.
"""

import argparse
import contextlib
import os
import statistics
import sys
from pathlib import Path

from bench_load_balancer import serve_minimal_proxy
from wrk import Chain, ChainResult, load_balancer, print_medians, process, python_role, run_rounds

from titanium_dev.suite import free_port

PATH = "/api/users/bench?x=1"
SCRIPT = Path(__file__).resolve()

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


# ---------------------------------------------------------------- the chains


def start_chains(stack: contextlib.ExitStack, quick: bool) -> dict[str, Chain]:
    """Every chain, started once; all share one FastAPI endpoint, and only one chain is loaded at a time."""

    def role(name: str, *extra: str) -> tuple[str, int]:
        port = free_port()
        child = stack.enter_context(python_role(SCRIPT, name, port, *extra))
        return f"http://127.0.0.1:{port}", child.pid

    def lb(target: str) -> tuple[str, int]:
        port = free_port()
        return f"http://127.0.0.1:{port}", stack.enter_context(load_balancer(port, target)).pid

    def gateway(backend: str) -> tuple[str, int]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"PORT": str(port), "USER_SERVICE_URL": backend}
        return url, stack.enter_context(process([sys.executable, "-m", "api_gateway"], env=env, ready_url=url)).pid

    backend, backend_pid = role("fastapi-backend")
    gw, gw_pid = gateway(backend)
    front, lb_pid = lb(gw)
    inner, inner_pid = role("bare-aiohttp", "--upstream", backend)
    outer, outer_pid = role("bare-aiohttp", "--upstream", inner)
    chains = {
        "direct": Chain(backend, {"fastapi": backend_pid}),
        "titanium": Chain(front, {"load-balancer": lb_pid, "api-gateway": gw_pid, "fastapi": backend_pid}),
        "bare-aiohttp": Chain(outer, {"outer": outer_pid, "inner": inner_pid, "fastapi": backend_pid}),
    }
    if not quick:
        for name in ("fastapi-httpx", "fastapi-aiohttp", "bare-aiohttp"):
            middle, middle_pid = role(name, "--upstream", backend)
            lb_url, lb_pid = lb(middle)
            chains[f"lb+{name}"] = Chain(lb_url, {"lb": lb_pid, name: middle_pid, "fastapi": backend_pid})
    return chains


def report(results: dict[str, list[ChainResult]], args: argparse.Namespace) -> None:
    median = statistics.median
    print_medians(results, PATH, duration_s=args.duration, connections=args.connections)

    def ratio(a: str, b: str) -> float:
        # Paired by round, so that both sides of a ratio saw the same background load.
        return median([x.wrk.rps / y.wrk.rps for x, y in zip(results[a], results[b], strict=True)])

    titanium = results["titanium"]
    print(f"titanium vs FastAPI direct:        {ratio('titanium', 'direct'):6.1%} of the RPS")
    print(f"titanium vs bare aiohttp two hops: {ratio('titanium', 'bare-aiohttp'):6.1%} of the RPS (target >= 90 %)")
    print(
        f"titanium: {median([r.wrk.rps for r in titanium]):.0f} RPS (target >= 2000), "
        f"p99 {median([r.wrk.p99_ms for r in titanium]):.1f} ms (target <= 30 ms)"
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
    parser.add_argument("--quick", action="store_true", help="only direct, titanium and bare-aiohttp")
    args = parser.parse_args()

    if args.command == "serve":
        if args.role == "fastapi-backend":
            serve_fastapi_backend(args.port)
        elif args.role == "bare-aiohttp":
            serve_minimal_proxy(args.port, args.upstream)
        else:
            serve_fastapi_relay(args.port, args.upstream, args.role.removeprefix("fastapi-"))
        return 0

    print("api-gateway benchmark (loopback; other processes on this machine make the numbers noisy)", flush=True)
    with contextlib.ExitStack() as stack:
        chains = start_chains(stack, args.quick)
        results = run_rounds(chains, PATH, rounds=args.rounds, duration_s=args.duration, connections=args.connections)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
