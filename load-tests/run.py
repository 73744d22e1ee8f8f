"""Load runs with a report folder: `make load`, `make load-knee` and the original system's scripts all come here.

  run.py load  [--url URL | --start] [--scenario mixed] [--rate 100] [--duration 60s] [thresholds] [blog rates]
  run.py knee  [--url URL | --start] [--scenario mixed] [--step-duration 15s] [--max-p95-ms 100]
  run.py diag  --url URL [--username U --password P]
  run.py sweep --url URL --username U --password P [--prefix ml_]

`load` runs locust (load-tests/locustfile.py) headless and writes load-tests/results/<UTC timestamp>/: locust's CSV
(with full history) and HTML report, summary.json, timeline.json, chart.png and locust.log; it prints one screen and
exits 1 when a threshold fails. `--start` starts a suite of its own on free ports (and stops it), else LOAD_URL or
--url (default http://127.0.0.1:7100) must be running. `knee` steps the rate (100, 200, 400, ... then bisects) until
a step fails (p95 over the limit, a failed request, or the rate not reached) and reports the highest that held.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
import results
from load_config import duration_seconds, latency_limit
from load_data import LoadDataError, RunData, sweep
from wrk import cpu_seconds

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
RESULTS_ROOT = HERE / "results"
BLOG_RATE_FLAGS = ("list", "detail", "create", "update", "delete")
EXIT_NO_SUMMARY = 2


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")[:-4] + "Z"


@dataclass
class Target:
    """What is loaded: the load balancer's URL and, for a suite started here, each service's process id."""

    url: str
    pids: dict[str, int] = field(default_factory=dict)

    def cpu_seconds(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}


@contextlib.contextmanager
def suite_or_url(args: argparse.Namespace, log_dir: Path) -> Iterator[Target]:
    """The suite to load: one started here on free ports (stopped afterwards), or the one at the URL given."""
    if not args.start:
        yield Target(args.url.rstrip("/"))
        return
    from titanium_dev.suite import SERVICES, Suite, free_port

    ports = {spec.name: free_port() for spec in SERVICES}
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting a suite of its own (log: {log_dir / 'suite.log'}) ...", flush=True)
    # WARNING: an access-log line per request, pumped through the launcher, would be measured as well.
    env = {"LOG_LEVEL": os.environ.get("SUITE_LOG_LEVEL", "WARNING")}
    with (
        tempfile.TemporaryDirectory(prefix="titanium-load-") as data_dir,
        open(log_dir / "suite.log", "w") as log,
        Suite(ports=ports, data_dir=Path(data_dir), extra_env=env, echo=log) as suite,
    ):
        yield Target(suite.url("load-balancer"), {name: p.proc.pid for name, p in suite.processes.items()})


def locust_env(args: argparse.Namespace, url: str, rate: float, results_dir: Path) -> dict[str, str]:
    env = dict(os.environ) | {
        "LOAD_URL": url,
        "RATE": str(rate),
        "DURATION": args.duration,
        "SCENARIO": args.scenario,
        "RESULTS_DIR": str(results_dir),
        "MAX_P95_MS": "off" if args.max_p95_ms is None else str(args.max_p95_ms),
        "MAX_FAILURES": str(args.max_failures),
        "RATE_TOLERANCE_PCT": str(args.rate_tolerance_pct),
        "CLEANUP": "1" if args.cleanup else "",
    }
    for kind in BLOG_RATE_FLAGS:
        value = getattr(args, f"rate_{kind}", None)
        if value is not None:
            env[f"RATE_{kind.upper()}"] = str(value)
    if args.username:
        env |= {"LOAD_USERNAME": args.username, "LOAD_PASSWORD": args.password}
    return env


def run_locust(args: argparse.Namespace, target: Target, rate: float, results_dir: Path) -> tuple[int, dict | None]:
    """One headless locust run into `results_dir`; (exit code, summary or None). For a suite started here the
    summary also gets each service's CPU milliseconds per request (set-up and clean-up included), which other load
    on the machine moves less than it moves latency."""
    url = target.url
    results_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--only-summary",
        "--csv",
        str(results_dir / "locust"),
        "--csv-full-history",
        "--html",
        str(results_dir / "report.html"),
    ]
    budget_s = duration_seconds(args.duration) + 300  # data set-up and clean-up included
    cpu_before = target.cpu_seconds()
    with open(results_dir / "locust.log", "w") as log:
        done = subprocess.run(
            argv,
            env=locust_env(args, url, rate, results_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=HERE.parent,
            timeout=budget_s,
        )
    summary_path = results_dir / "summary.json"
    if not summary_path.exists():
        lines = (results_dir / "locust.log").read_text().splitlines()
        said = [line for line in lines if "could not make the test data" in line or "Error" in line]
        print("\n".join(said[-10:] or lines[-30:]), file=sys.stderr)
        return done.returncode or EXIT_NO_SUMMARY, None
    summary = json.loads(summary_path.read_text())
    if cpu_before:
        used = {name: seconds - cpu_before[name] for name, seconds in target.cpu_seconds().items()}
        per_request = {name: round(1000 * s / max(summary["requests"], 1), 3) for name, s in used.items()}
        summary["suite_cpu_ms_per_request"] = per_request | {"all": round(sum(per_request.values()), 3)}
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    results.draw(results_dir)
    return done.returncode, summary


def command_load(args: argparse.Namespace) -> int:
    results_dir = args.results_dir or RESULTS_ROOT / utc_stamp()
    with suite_or_url(args, results_dir) as target:
        code, summary = run_locust(args, target, args.rate, results_dir)
    if summary is not None:
        print(results.one_screen(summary))
    print(f"results in {results_dir}")
    return code


def command_knee(args: argparse.Namespace) -> int:
    results_dir = args.results_dir or RESULTS_ROOT / f"knee-{utc_stamp()}"
    steps: list[dict] = []

    def step(target: Target, rate: float) -> bool:
        code, summary = run_locust(args, target, rate, results_dir / f"step-{len(steps) + 1:02d}-{rate:g}rps")
        if summary is None:
            raise SystemExit(f"step at {rate:g} RPS gave no summary (exit {code})")
        held = summary["passed"]
        steps.append(
            {"rate": rate, "held": held}
            | {k: summary[k] for k in ("achieved_rps", "failures", "latency_ms", "failed_because", "locust", "machine")}
            | {"suite_cpu_ms_per_request": summary.get("suite_cpu_ms_per_request")}
        )
        print(
            f"  {rate:>7g} RPS: {'held' if held else 'FAILED':<6} achieved {summary['achieved_rps']:.1f}, "
            f"p95 {summary['latency_ms']['p95']:.1f} ms, p99 {summary['latency_ms']['p99']:.1f} ms, "
            f"{summary['failures']} failed, locust {summary['locust']['cpu_pct_of_one_core']:g} % of a core, "
            f"load {summary['machine']['load_average'][0]}"
            + (f", suite {summary['suite_cpu_ms_per_request']['all']:.2f} ms CPU/request" if target.pids else ""),
            flush=True,
        )
        time.sleep(args.pause_s)
        return held

    with suite_or_url(args, results_dir) as target:
        held, failed = 0.0, None
        rate = args.first_rate
        while failed is None and rate <= args.max_rate:
            if step(target, rate):
                held, rate = rate, rate * 2
            else:
                failed = rate
        for _ in range(args.bisections if failed is not None else 0):
            if failed - held <= max(held, args.first_rate) * 0.05:
                break
            middle = round((held + failed) / 2)
            if step(target, middle):
                held = middle
            else:
                failed = middle
    knee = {
        "knee_rps": held,
        "first_failed_rps": failed,
        "steps": steps,
        "scenario": args.scenario,
        "step_duration": args.duration,
        "limits": {
            "max_p95_ms": args.max_p95_ms,
            "max_failures": args.max_failures,
            "rate_tolerance_pct": args.rate_tolerance_pct,
        },
        "machine": results.machine(),
    }
    (results_dir / "knee.json").write_text(json.dumps(knee, indent=2) + "\n")
    chart = results.draw_knee(results_dir)
    print(
        f"knee: {held:g} RPS held ({args.scenario}, {args.duration} steps, p95 ≤ {args.max_p95_ms or '∞'} ms, "
        f"{args.max_failures} failures); first failed: {failed if failed is not None else '-'}"
    )
    print(f"results in {results_dir} (chart {chart.name})")
    return 0 if held > 0 else 1


DIAG_STEPS = {"set-up": 10, "create": 11, "read": 12, "delete": 13, "read-after-delete": 14}


def command_diag(args: argparse.Namespace) -> int:
    """Create one post, GET 200, DELETE 204, GET 404; the exit code names the step that failed."""
    url = args.url.rstrip("/")
    http = requests.Session()
    try:
        data = RunData.prepare(url, username=args.username, password=args.password, seed_posts=0)
    except (LoadDataError, requests.RequestException) as exc:
        print(f"FAILED at set-up: {exc}")
        return DIAG_STEPS["set-up"]
    post_id = None
    try:
        checks = [
            ("create", "POST", "/api/posts", 201),
            ("read", "GET", None, 200),
            ("delete", "DELETE", None, 204),
            ("read-after-delete", "GET", None, 404),
        ]
        for name, method, path, expected in checks:
            body = {"title": f"{data.prefix} diag", "content": "diag_delete: create, read, delete, read"}
            answer = http.request(
                method,
                url + (path or f"/api/posts/{post_id}"),
                headers=data.account.headers,
                json=body if method == "POST" else None,
                timeout=10,
            )
            shown = f"{method} {path or f'/api/posts/{post_id}'} → {answer.status_code}"
            if answer.status_code != expected:
                print(f"FAILED at {name}: {shown}, expected {expected}: {answer.text[:200]}")
                return DIAG_STEPS[name]
            print(f"ok  {name:<18} {shown}")
            if name == "create":
                post_id = answer.json()["id"]
                data.created_ids.append(post_id)
        print("diag_delete passed")
        return 0
    except requests.RequestException as exc:
        print(f"FAILED: {exc}")
        return DIAG_STEPS["set-up"]
    finally:
        data.clean_up()


def command_sweep(args: argparse.Namespace) -> int:
    if not args.username:
        print("clean-up alone needs --username and --password (an admin deletes anyone's posts)")
        return 2
    removed = sweep(args.url.rstrip("/"), args.prefix, args.username, args.password)
    print(f"clean-up of posts titled {args.prefix}…: {removed}")
    return 0 if removed["posts_not_removed"] == 0 else 1


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)

    def target(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--url", default=os.environ.get("LOAD_URL", "http://127.0.0.1:7100"))
        sub.add_argument("--username", default=os.environ.get("LOAD_USERNAME", ""))
        sub.add_argument("--password", default=os.environ.get("LOAD_PASSWORD", ""))

    def run_options(sub: argparse.ArgumentParser, *, p95: float, tolerance: float, duration: str) -> None:
        target(sub)
        sub.add_argument("--start", action="store_true", help="start a suite of its own on free ports")
        sub.add_argument("--scenario", default=os.environ.get("SCENARIO", "mixed"))
        sub.add_argument("--duration", default=duration)
        sub.add_argument("--max-p95-ms", type=latency_limit, default=p95, help="milliseconds, or off")
        sub.add_argument("--max-failures", type=int, default=0)
        sub.add_argument("--rate-tolerance-pct", type=float, default=tolerance)
        sub.add_argument("--results-dir", type=Path, default=None)
        sub.add_argument("--cleanup", action="store_true", help="also delete what carries the run's title prefix")
        for kind in BLOG_RATE_FLAGS:
            sub.add_argument(f"--rate-{kind}", type=float, default=None)

    load = commands.add_parser("load", help="one run")
    run_options(load, p95=25.0, tolerance=2.0, duration=os.environ.get("DURATION", "60s"))
    load.add_argument("--rate", type=float, default=float(os.environ.get("RATE", "100")))

    knee = commands.add_parser("knee", help="step the rate until it no longer holds")
    run_options(knee, p95=100.0, tolerance=5.0, duration=os.environ.get("STEP_DURATION", "15s"))
    knee.add_argument("--first-rate", type=float, default=100.0)
    knee.add_argument("--max-rate", type=float, default=12_800.0)
    knee.add_argument("--bisections", type=int, default=3)
    knee.add_argument("--pause-s", type=float, default=3.0)

    diag = commands.add_parser("diag", help="create, read, delete, read one post")
    target(diag)

    cleanup = commands.add_parser("sweep", help="delete every post titled with the load tests' prefix")
    target(cleanup)
    cleanup.add_argument("--prefix", default="ml_")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return {"load": command_load, "knee": command_knee, "diag": command_diag, "sweep": command_sweep}[args.command](
        args
    )


if __name__ == "__main__":
    sys.exit(main())
