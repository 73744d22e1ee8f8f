"""Shared pieces for the `bench_*.py` scripts: run wrk and read its figures, start helper processes (Python
roles, nginx) on free loopback ports and wait until they answer, read a process's CPU time.

Import it from a bench script in this folder with `from wrk import ...` (the script's own folder is on sys.path).
"""

import contextlib
import os
import re
import shutil
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
START_TIMEOUT_S = 30.0
# Helper services log at WARNING: an access-log line per request would be measured too.
QUIET_ENV = {"LOG_LEVEL": "WARNING", "ENV": "test", "PYTHONUNBUFFERED": "1"}
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def row(self) -> str:
        return f"{self.rps:>10,.0f} {self.p50_ms:>9.2f} {self.p99_ms:>9.2f} {self.errors:>7}"


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """wrk --latency output → RPS, p50, p99 and errors (socket errors plus non-2xx/3xx answers)."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(rps, p50, p99, requests, errors + (int(non_2xx.group(1)) if non_2xx else 0))


def run_wrk(url: str, *, duration_s: int = 10, connections: int = 32, threads: int = 2) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk` (or `make bench`, which installs it)")
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency", url]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=duration_s + 60)
    return parse_wrk(done.stdout)


def wait_until_answers(url: str, process: subprocess.Popen | None = None, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers; the status is not ours to judge here
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


@contextlib.contextmanager
def process(
    argv: list[str], *, env: dict[str, str] | None = None, ready_url: str | None = None
) -> Iterator[subprocess.Popen]:
    """A child process (output discarded) that is stopped, SIGTERM then SIGKILL, when the block ends."""
    child = subprocess.Popen(
        argv,
        env=os.environ | QUIET_ENV | (env or {}),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        if ready_url:
            wait_until_answers(ready_url, child)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def python_role(script: Path, role: str, port: int, *extra: str, env: dict[str, str] | None = None):
    """`python <script> serve <role> --port N ...` as a process, ready once http://127.0.0.1:N/ answers."""
    argv = [sys.executable, str(script), "serve", role, "--port", str(port), *extra]
    return process(argv, env=env, ready_url=f"http://127.0.0.1:{port}/")


def load_balancer(port: int, gateway_url: str, env: dict[str, str] | None = None):
    """The real Titanium load balancer (`python -m load_balancer`) with every replica pool pointed at one URL."""
    settings = {"PORT": str(port), "GATEWAY_URLS": gateway_url, "DASHBOARD_URLS": gateway_url} | (env or {})
    return process([sys.executable, "-m", "load_balancer"], env=settings, ready_url=f"http://127.0.0.1:{port}/health")


NGINX_CONFIG = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    {upstream}
    server {{
        listen 127.0.0.1:{port};
        location / {{ {location} }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(port: int, *, upstream_url: str | None = None, body: str = '{"ok":true}') -> Iterator[subprocess.Popen]:
    """nginx with one worker: a static JSON answer, or (with `upstream_url`) a keep-alive reverse proxy to it."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("nginx is not installed: `apt-get install -y nginx-light` (or `make bench`)")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as workdir:
        if upstream_url:
            upstream = f"upstream backend {{ server {upstream_url.removeprefix('http://')}; keepalive 64; }}"
            location = 'proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";'
        else:
            upstream = ""
            location = f"default_type application/json; return 200 '{body}';"
        config = Path(workdir) / "nginx.conf"
        config.write_text(NGINX_CONFIG.format(dir=workdir, port=port, upstream=upstream, location=location))
        with process([binary, "-c", str(config), "-p", workdir], ready_url=f"http://127.0.0.1:{port}/") as child:
            yield child


@dataclass
class Chain:
    url: str
    # Process name → pid, for the CPU time each hop spends per request.
    hops: dict[str, int]


@dataclass
class ChainResult:
    wrk: WrkResult
    load: float
    # CPU microseconds per request, by hop: unlike RPS, barely moved by other load on the machine.
    cpu_us: dict[str, float]

    def line(self, name: str) -> str:
        cpu = "  ".join(f"{hop} {us:.0f}" for hop, us in self.cpu_us.items())
        return (
            f"  {name:<30} {self.wrk.rps:6.0f} RPS  p50 {self.wrk.p50_ms:6.2f} ms  p99 {self.wrk.p99_ms:6.2f} ms"
            f"  errors {self.wrk.errors}  load {self.load:.1f}  CPU us/req: {cpu}"
        )


def measure_chain(chain: Chain, path: str, *, duration_s: int, connections: int) -> ChainResult:
    """One wrk run on `chain`, with each hop's CPU time per request."""
    load = os.getloadavg()[0]
    before = {hop: cpu_seconds(pid) for hop, pid in chain.hops.items()}
    result = run_wrk(chain.url + path, duration_s=duration_s, connections=connections)
    cpu_us = {hop: (cpu_seconds(pid) - before[hop]) * 1e6 / max(result.requests, 1) for hop, pid in chain.hops.items()}
    return ChainResult(result, load, cpu_us)


def run_rounds(
    chains: dict[str, Chain], path: str, *, rounds: int, duration_s: int, connections: int
) -> dict[str, list[ChainResult]]:
    """Chains take turns, round after round, every other round in reverse order: a burst of load from elsewhere
    hits them all alike, and no chain always runs just after the same other one."""
    for chain in chains.values():
        run_wrk(chain.url + path, duration_s=2, connections=8)  # warm-up: pools filled, code paths hot
    results: dict[str, list[ChainResult]] = {name: [] for name in chains}
    for n in range(1, rounds + 1):
        print(f"round {n}/{rounds}", flush=True)
        for name, chain in list(chains.items())[:: 1 if n % 2 else -1]:
            result = measure_chain(chain, path, duration_s=duration_s, connections=connections)
            results[name].append(result)
            print(result.line(name), flush=True)
    return results


def print_medians(results: dict[str, list[ChainResult]], path: str, *, duration_s: int, connections: int) -> None:
    median = statistics.median
    rounds = len(next(iter(results.values())))
    print(f"\nmedians over {rounds} rounds (wrk -t2 -c{connections} -d{duration_s}s GET {path}):")
    for name, runs in results.items():
        rps, p50, p99 = (median([getattr(r.wrk, f) for r in runs]) for f in ("rps", "p50_ms", "p99_ms"))
        cpu = "  ".join(f"{hop} {median([r.cpu_us[hop] for r in runs]):.0f}" for hop in runs[0].cpu_us)
        print(f"  {name:<30} {rps:6.0f} RPS  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  CPU us/req: {cpu}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc), including threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
