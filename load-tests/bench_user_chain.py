"""user-service's `GET /api/users/{id}` (a cache hit, no token) with wrk: straight to user-service, through the
gateway, and through load balancer and gateway (the suite's request path). Numbers to read, never asserted.

A suite of its own is started on free ports (SQLite, a private redis-server, services at LOG_LEVEL=WARNING); one
user is registered and read once so that every measured request is a cache hit. Chains take turns for several
rounds; besides RPS and latency, each hop's CPU time per request is read from /proc.

Run: `make bench` (all bench_*.py), or `.venv/bin/python load-tests/bench_user_chain.py [--rounds 3]`; with
`--tracing`, the chain through load balancer and gateway with tracing on, off and at sampling 0 (a suite each);
with `--tracing --baseline DIR`, the traced and sampling-0 suites again on the kit of another checkout (`git archive
main | tar -x -C DIR`): a kit change's before/after under the same load; with `--postgresql`, the services keep
their data in a schema of their own at BENCH_POSTGRES_URL (dropped after);
with `--make-run`, the chain through load balancer and gateway of a suite started as `make run` starts it (the
launcher `python -m titanium_dev.run`, its own defaults: SQLite, LOG_LEVEL=INFO, every service's output relayed
by the launcher, here into a file rather than a terminal), the launcher's CPU time per request shown too, in turns
with the same chain of the quiet bench suite. ACCESS_LOG in the environment reaches the services, as under
`make run` (`ACCESS_LOG=every` for a line per request).
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import asyncpg
from wrk import QUIET_ENV, REPO_ROOT, Chain, print_medians, run_rounds

from titanium_dev.suite import SERVICES, Suite, free_port

# The suite's latency target for this chain (load-tests/README.md): p99 at most this through load balancer and
# gateway.
TARGET_P99_MS = 30.0
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _register_and_read(user_url: str) -> int:
    body = json.dumps({"username": "bench", "email": "bench@example.com", "password": "password-123"}).encode()
    request = urllib.request.Request(
        f"{user_url}/api/users", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        user_id = json.load(answer)["id"]
    with urllib.request.urlopen(f"{user_url}/api/users/{user_id}", timeout=30):
        pass  # fills the cache
    return user_id


# The chain under make run's launcher, named with the access log setting it ran with.
MAKE_RUN = f"make run (ACCESS_LOG={os.environ.get('ACCESS_LOG') or 'summary'})"

# Tracing variants (--tracing): a suite each, their lb+gateway chains taking turns.
TRACING_VARIANTS = {
    "traced": {},
    "untraced": {"OTEL_SDK_DISABLED": "true"},
    "sample0": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
}


def _start_suite(stack: contextlib.ExitStack, env: dict[str, str]) -> tuple[Suite, str]:
    ports = {spec.name: free_port() for spec in SERVICES}
    data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-user-chain-"))
    extra_env = QUIET_ENV | {"ENV": "development"} | env
    suite = stack.enter_context(Suite(ports=ports, data_dir=Path(data_dir), extra_env=extra_env, echo=None))
    return suite, f"/api/users/{_register_and_read(suite.url('user-service'))}"


def _children(parent: int) -> dict[str, int]:
    """The launcher's children by the module they run (`python -m <module>`)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if b"-m" in argv:
            found[argv[argv.index(b"-m") + 1].decode()] = int(entry.name)
    return found


def _start_make_run(stack: contextlib.ExitStack) -> tuple[Chain, str, Path]:
    """The launcher as `make run` runs it (private data and free ports): the lb+gateway chain, with the launcher's
    own CPU time, and the file its relayed output goes to."""
    data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-make-run-")))
    ports = {spec.name: free_port() for spec in SERVICES}
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_LEVEL", "DATA_DIR")}
    env.update({name.upper().replace("-", "_") + "_PORT": str(port) for name, port in ports.items()})
    env["DATA_DIR"] = str(data_dir)
    output = data_dir / "make-run.log"
    with open(output, "wb") as sink:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "titanium_dev.run"], env=env, cwd=REPO_ROOT, stdout=sink, stderr=sink
        )

    def stop() -> None:
        launcher.terminate()
        try:
            launcher.wait(30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()

    stack.callback(stop)
    deadline = time.monotonic() + 120
    while "all services ready" not in output.read_text(errors="replace"):
        if launcher.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"make run's launcher did not start:\n{output.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    user_url = f"http://127.0.0.1:{ports['user-service']}"
    path = f"/api/users/{_register_and_read(user_url)}"
    modules = _children(launcher.pid)
    hops = {"launcher": launcher.pid} | {
        name: modules[module]
        for name, module in (
            ("load-balancer", "load_balancer"),
            ("api-gateway", "api_gateway"),
            ("user-service", "user_service"),
        )
    }
    return Chain(f"http://127.0.0.1:{ports['load-balancer']}", hops), path, output


def _postgres_admin(statement: str) -> None:
    async def execute() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute())


def _postgres_schema(stack: contextlib.ExitStack) -> dict[str, str]:
    """A schema of this run's own at POSTGRES_URL, dropped at the end; the services' database settings."""
    schema = f"bench_user_chain_{uuid.uuid4().hex[:8]}"
    _postgres_admin(f'CREATE SCHEMA "{schema}"')
    stack.callback(_postgres_admin, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return {"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": schema}


def _baseline_kit(checkout: Path) -> Path:
    """`checkout`'s kit, put ahead of this workspace's own (the editable installs are .pth entries, which come after
    PYTHONPATH on sys.path)."""
    kit = checkout.resolve() / "common"
    if not (kit / "titanium_common").is_dir():
        raise SystemExit(f"--baseline {checkout}: no common/titanium_common (a checkout of the repository is expected)")
    return kit


def _hops(suite: Suite, *names: str) -> dict[str, int]:
    return {name: suite.processes[name].proc.pid for name in names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="instead: lb+gateway with tracing on (the default), off, and at sampling 0, a suite each, in turns",
    )
    parser.add_argument(
        "--make-run",
        action="store_true",
        help="instead: lb+gateway of a suite started by make run's launcher with its own defaults",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="with --tracing: also the traced and sampling-0 suites on another checkout's kit, for a before/after",
    )
    parser.add_argument("--postgresql", action="store_true", help="PostgreSQL at BENCH_POSTGRES_URL, not SQLite")
    args = parser.parse_args()
    if args.baseline and not args.tracing:
        parser.error("--baseline compares kits under --tracing")
    if args.make_run and args.postgresql:
        parser.error("--make-run measures make run's default set-up (SQLite); drop --postgresql")

    print("user-service GET /api/users/{id} benchmark (loopback; other work on this machine makes it noisy)")
    relayed = None
    with contextlib.ExitStack() as stack:
        database_env = _postgres_schema(stack) if args.postgresql else {}
        if args.make_run:
            chain, path, relayed = _start_make_run(stack)
            quiet, quiet_path = _start_suite(stack, {})
            assert quiet_path == path  # the same first user in both suites
            hops = _hops(quiet, "load-balancer", "api-gateway", "user-service")
            chains = {"quiet bench": Chain(quiet.url("load-balancer"), hops), MAKE_RUN: chain}
        elif args.tracing:
            chains, paths = {}, set()
            variants = dict(TRACING_VARIANTS)
            if args.baseline:
                base = {"PYTHONPATH": str(_baseline_kit(args.baseline))}
                variants |= {f"{name} (baseline)": base | TRACING_VARIANTS[name] for name in ("traced", "sample0")}
            for variant, env in variants.items():
                suite, path = _start_suite(stack, database_env | env)
                paths.add(path)
                hops = _hops(suite, "load-balancer", "api-gateway", "user-service")
                chains[f"lb+gateway {variant}"] = Chain(suite.url("load-balancer"), hops)
            (path,) = paths  # the same first user in every suite
        else:
            suite, path = _start_suite(stack, database_env)
            chains = {
                "direct": Chain(suite.url("user-service"), _hops(suite, "user-service")),
                "gateway": Chain(suite.url("api-gateway"), _hops(suite, "api-gateway", "user-service")),
                "lb+gateway": Chain(
                    suite.url("load-balancer"), _hops(suite, "load-balancer", "api-gateway", "user-service")
                ),
            }
        results = run_rounds(chains, path, rounds=args.rounds, duration_s=args.duration, connections=args.connections)
        if relayed is not None:
            text = relayed.read_text(errors="replace")
            print(f"lines the launcher relayed: {text.count(chr(10)):,}, of them access lines of single requests: "
                  f"{len(re.findall(r'titanium.access: [A-Z]+ /', text)):,}")  # fmt: skip

    median = statistics.median
    print_medians(results, path, duration_s=args.duration, connections=args.connections)
    if args.make_run:
        rps = {name: median([r.wrk.rps for r in runs]) for name, runs in results.items()}
        print(f"make run / quiet bench: {rps[MAKE_RUN] / rps['quiet bench']:.0%} RPS (target >= 90 %)")
    elif args.tracing:
        rps = {name: median([r.wrk.rps for r in runs]) for name, runs in results.items()}
        untraced = rps["lb+gateway untraced"]
        print(f"traced / untraced: {rps['lb+gateway traced'] / untraced:.0%} (target >= 90 %)")
        print(f"sampling 0 / untraced: {rps['lb+gateway sample0'] / untraced:.0%} (target >= 98 %)")
        for name in ("traced", "sample0"):
            if f"lb+gateway {name} (baseline)" in rps:
                change = rps[f"lb+gateway {name}"] / rps[f"lb+gateway {name} (baseline)"]
                print(f"{name} / {name} on the baseline's kit: {change:.0%}")
    else:
        p99 = median([r.wrk.p99_ms for r in results["lb+gateway"]])
        print(f"through load balancer and gateway: p99 {p99:.1f} ms (target <= {TARGET_P99_MS:g} ms)")
    loads = [r.load for runs in results.values() for r in runs]
    print(f"1-minute load average during the runs: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
