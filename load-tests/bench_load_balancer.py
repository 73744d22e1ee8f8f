"""Load balancer benchmark: wrk against real processes on loopback. Numbers to read, never asserted.

Four chains, all ending at the same fast static backend (nginx, one worker, a fixed JSON answer):
  direct        wrk → backend
  nginx         wrk → nginx (one worker, keep-alive upstream) → backend
  aiohttp-min   wrk → a minimal aiohttp proxy (one shared ClientSession, whole bodies, no accounting) → backend
  titanium      wrk → the Titanium load balancer (pools, streaming, real-traffic accounting, kit) → backend
  titanium-shared  the same balancer with shared accounting on: its counters flushed every 200 ms into a private
                redis-server (started for the run), as with several replicas
  titanium-untraced  the balancer with tracing off (OTEL_SDK_DISABLED=true); `titanium` traces every request
  titanium-sample0   the balancer with tracing on and sampling 0 (context passed on, no span recorded)
  baseline, baseline-untraced  with `--baseline DIR`: the balancer of another checkout of this repository (e.g.
                `git archive main | tar -x -C /tmp/base`), traced and untraced, run by this interpreter with DIR's
                sources first on PYTHONPATH: a change and what it changes, measured in the same run
The path is /api/..., so the balancer counts every request as real traffic: all its accounting is on.
Chains take turns for several rounds, every other round in reverse order (the median is shown); the proxies' CPU
time per request is read from /proc, which other load on the machine moves less than it moves RPS.

Run: `make bench` (all bench_*.py), or `.venv/bin/python load-tests/bench_load_balancer.py [--rounds 3]
[--duration 10] [--connections 32] [--chains a,b] [--baseline DIR]`. The same file serves the minimal proxy:
`... serve aiohttp-min --port N --upstream URL`.
"""

import argparse
import contextlib
import os
import shutil
import statistics
import sys
from pathlib import Path

from wrk import WrkResult, cpu_seconds, load_balancer, nginx, python_role, run_wrk

from titanium_dev.suite import free_port, start_redis_server

PATH = "/api/users/bench?x=1"
CHAINS = (
    "direct",
    "nginx",
    "aiohttp-min",
    "titanium",
    "titanium-shared",
    "titanium-untraced",
    "titanium-sample0",
    "baseline",
    "baseline-untraced",
)
UNTRACED = {"OTEL_SDK_DISABLED": "true"}
SAMPLED_NEVER = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}


def serve_minimal_proxy(port: int, upstream: str) -> None:
    """The floor for an aiohttp proxy: forward method, path, headers and body; read the answer whole. It runs on
    uvloop like the Titanium proxies, so that a comparison measures what Titanium adds, not the event loop."""
    import asyncio

    import aiohttp
    import uvloop
    from aiohttp import web

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    hop = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
        data = await request.read() if request.body_exists else None
        async with request.app[session_key].request(
            request.method, upstream + request.raw_path, headers=headers, data=data, allow_redirects=False
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in hop}
            return web.Response(body=body, status=answer.status, headers=kept)

    async def session(app: web.Application):
        app[session_key] = aiohttp.ClientSession(auto_decompress=False)
        yield
        await app[session_key].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def baseline_env(checkout: Path) -> dict[str, str]:
    """`checkout`'s load balancer and kit ahead of this workspace's own: the editable installs are .pth entries,
    which come after PYTHONPATH on sys.path."""
    sources = [checkout / "load-balancer", checkout / "common"]
    missing = [str(source) for source in sources if not source.is_dir()]
    if missing:
        sys.exit(f"--baseline {checkout}: no {', '.join(missing)} (a checkout of this repository is expected)")
    return {"PYTHONPATH": os.pathsep.join(str(source) for source in sources)}


def measure(args: argparse.Namespace) -> dict[str, list[tuple[WrkResult, float | None]]]:
    """Per chain, per round: the wrk result and the proxy's CPU milliseconds per request (None for direct)."""
    script = Path(__file__).resolve()
    results: dict[str, list[tuple[WrkResult, float | None]]] = {name: [] for name in CHAINS}
    backend_port, nginx_port, minimal_port, lb_port, shared_port, redis_port = (free_port() for _ in range(6))
    untraced_port, sample0_port, baseline_port, baseline_untraced_port = (free_port() for _ in range(4))
    backend = f"http://127.0.0.1:{backend_port}"
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.exit("redis-server is needed for the titanium-shared chain (Debian package redis-server)")
    redis = start_redis_server(redis_server, redis_port)
    shared_env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "REPLICA_NAME": "bench"}
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(nginx(backend_port))
            stack.enter_context(nginx(nginx_port, upstream_url=backend))
            minimal = stack.enter_context(python_role(script, "aiohttp-min", minimal_port, "--upstream", backend))
            lb = stack.enter_context(load_balancer(lb_port, backend))
            shared = stack.enter_context(load_balancer(shared_port, backend, shared_env))
            untraced = stack.enter_context(load_balancer(untraced_port, backend, UNTRACED))
            sample0 = stack.enter_context(load_balancer(sample0_port, backend, SAMPLED_NEVER))
            chains = {
                "direct": (backend_port, None),
                "nginx": (nginx_port, None),
                "aiohttp-min": (minimal_port, minimal.pid),
                "titanium": (lb_port, lb.pid),
                "titanium-shared": (shared_port, shared.pid),
                "titanium-untraced": (untraced_port, untraced.pid),
                "titanium-sample0": (sample0_port, sample0.pid),
            }
            if args.baseline:
                base_env = baseline_env(args.baseline)
                for name, port, env in (
                    ("baseline", baseline_port, {}),
                    ("baseline-untraced", baseline_untraced_port, UNTRACED),
                ):
                    if name in args.chains:
                        chains[name] = (port, stack.enter_context(load_balancer(port, backend, base_env | env)).pid)
            chains = {name: chain for name, chain in chains.items() if name in args.chains}
            for port, _ in chains.values():  # warm-up: connections, first allocations
                run_wrk(f"http://127.0.0.1:{port}{PATH}", duration_s=2, connections=args.connections)
            for round_no in range(1, args.rounds + 1):
                # Every other round in reverse: a chain does not always run just after the same other one.
                order = list(chains.items()) if round_no % 2 else list(reversed(chains.items()))
                for name, (port, pid) in order:
                    cpu_before = cpu_seconds(pid) if pid else 0.0
                    result = run_wrk(
                        f"http://127.0.0.1:{port}{PATH}", duration_s=args.duration, connections=args.connections
                    )
                    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / max(result.requests, 1) if pid else None
                    results[name].append((result, cpu_ms))
                    print(f"  round {round_no} {name:<17} {result.row()}", flush=True)
    finally:
        redis.stop()
    return results


def report(results: dict[str, list[tuple[WrkResult, float | None]]], args: argparse.Namespace) -> None:
    def median(name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r, _ in results[name])

    print(f"\nmedian of {args.rounds} rounds, wrk -t2 -c{args.connections} -d{args.duration}s, GET {PATH}")
    print(f"{'chain':<17} {'RPS':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7} {'proxy CPU ms/req':>17}")
    for name in [c for c in CHAINS if results[c]]:
        cpus = [c for _, c in results[name] if c is not None]
        cpu = f"{statistics.median(cpus):>17.3f}" if cpus else f"{'-':>17}"
        errors = sum(r.errors for r, _ in results[name])
        print(
            f"{name:<17} {median(name, 'rps'):>10,.0f} {median(name, 'p50_ms'):>9.2f} "
            f"{median(name, 'p99_ms'):>9.2f} {errors:>7} {cpu}"
        )

    def ratio(label: str, a: str, b: str, target: str = "") -> None:
        if results[a] and results[b]:
            print(f"{label:<22} = {median(a, 'rps') / median(b, 'rps'):.0%}   {target}")

    print()
    ratio("titanium / aiohttp-min", "titanium", "aiohttp-min", "(target ≥ 90 %)")
    ratio("titanium / nginx", "titanium", "nginx", "(target ≥ 20 %)")
    ratio("aiohttp-min / nginx", "aiohttp-min", "nginx")
    ratio("shared / titanium", "titanium-shared", "titanium", "(target ≥ 90 %)")
    ratio("traced / untraced", "titanium", "titanium-untraced", "(target ≥ 90 %)")
    ratio("sampling 0 / untraced", "titanium-sample0", "titanium-untraced", "(target ≥ 98 %)")
    ratio("titanium / baseline", "titanium", "baseline")
    ratio("untraced / baseline", "titanium-untraced", "baseline-untraced")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve")
    serve.add_argument("role", choices=["aiohttp-min"])
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--upstream", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--chains",
        type=lambda v: [c for c in v.split(",") if c],
        default=[c for c in CHAINS if not c.startswith("baseline")],
        help="comma-separated subset, e.g. titanium,titanium-shared (shared accounting off vs on) or "
        "titanium,titanium-untraced,titanium-sample0 (tracing on, off, sampling 0)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="another checkout: its balancer runs too (chains baseline, baseline-untraced), for a before/after",
    )
    args = parser.parse_args()
    if args.baseline:
        args.chains += [c for c in ("baseline", "baseline-untraced") if c not in args.chains]
    if args.command == "serve":
        serve_minimal_proxy(args.port, args.upstream)
        return 0
    print("load balancer benchmark (loopback; other processes on this machine make the numbers noisy)")
    report(measure(args), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
