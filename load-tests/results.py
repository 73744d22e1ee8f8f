"""What a load run measured, judged and drawn: exact latency percentiles from every request, the achieved rate in
the measurement window, pass/fail thresholds, `summary.json` and the PNG chart."""

import json
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Thresholds:
    max_p95_ms: float | None = 25.0  # None: no latency limit (the original system's scripts had none)
    max_failures: int = 0
    rate_tolerance_pct: float = 2.0


@dataclass
class Sample:
    """One request: seconds since the window opened, its response time and whether it failed."""

    at_s: float
    name: str
    response_ms: float
    failed: bool


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(percentile(ordered, 0.50), 3),
        "p95": round(percentile(ordered, 0.95), 3),
        "p99": round(percentile(ordered, 0.99), 3),
        "max": round(ordered[-1], 3) if ordered else 0.0,
        "mean": round(sum(ordered) / len(ordered), 3) if ordered else 0.0,
    }


def timeline(samples: list[Sample], duration_s: float) -> list[dict[str, float]]:
    """Per second of the window: requests, failures and p50/p95/p99."""
    seconds: list[list[Sample]] = [[] for _ in range(math.ceil(duration_s))]
    for sample in samples:
        seconds[min(int(sample.at_s), len(seconds) - 1)].append(sample)
    rows = []
    for second, bucket in enumerate(seconds):
        figures = latency_figures([s.response_ms for s in bucket])
        rows.append(
            {"second": second, "requests": len(bucket), "failures": sum(s.failed for s in bucket)}
            | {key: figures[key] for key in ("p50", "p95", "p99")}
        )
    return rows


def git_revision() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_revision": os.environ.get("GIT_REVISION") or git_revision(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)


def judge(summary: dict, thresholds: Thresholds) -> Verdict:
    reasons = []
    p95 = summary["latency_ms"]["p95"]
    if thresholds.max_p95_ms is not None and p95 > thresholds.max_p95_ms:
        reasons.append(f"p95 {p95:.2f} ms > {thresholds.max_p95_ms:g} ms")
    if summary["failures"] > thresholds.max_failures:
        reasons.append(f"{summary['failures']} failed requests > {thresholds.max_failures}")
    target, achieved = summary["target_rps"], summary["achieved_rps"]
    if abs(achieved - target) > target * thresholds.rate_tolerance_pct / 100:
        reasons.append(f"achieved {achieved:.1f} RPS is not within {thresholds.rate_tolerance_pct:g} % of {target:g}")
    if summary["requests"] == 0:
        reasons.append("no request was made")
    return Verdict(not reasons, reasons)


def summarise(
    *,
    scenario: str,
    url: str,
    duration_s: float,
    target_rates: dict[str, float],
    samples: list[Sample],
    thresholds: Thresholds,
    suite_view: dict,
    locust_cpu_s: float,
) -> dict:
    names = sorted(target_rates)
    by_name = {
        name: {
            "target_rps": round(target_rates[name], 3),
            "requests": sum(1 for s in samples if s.name == name),
            "failures": sum(1 for s in samples if s.name == name and s.failed),
        }
        for name in names
    }
    for figures in by_name.values():
        figures["achieved_rps"] = round(figures["requests"] / duration_s, 3)
    summary = {
        "scenario": scenario,
        "url": url,
        "duration_s": duration_s,
        "target_rps": round(sum(target_rates.values()), 3),
        "achieved_rps": round(len(samples) / duration_s, 3),
        "requests": len(samples),
        "failures": sum(s.failed for s in samples),
        "latency_ms": latency_figures([s.response_ms for s in samples]),
        "by_request": by_name,
        "suite_view": suite_view,
        "locust": {"cpu_s": round(locust_cpu_s, 2), "cpu_pct_of_one_core": round(100 * locust_cpu_s / duration_s, 1)},
        "thresholds": asdict(thresholds),
        "machine": machine(),
    }
    verdict = judge(summary, thresholds)
    summary["passed"], summary["failed_because"] = verdict.passed, verdict.reasons
    return summary


def suite_view(stats_samples: list[dict]) -> dict:
    """The load balancer's own figures as `/stats` showed them while the run went on (as the original system's
    scripts checked)."""
    seen = [s for s in stats_samples if s.get("success_rate") is not None]
    if not seen:
        return {"samples": 0}

    def spread(key: str) -> dict[str, float]:
        values = [float(s[key]) for s in seen if s.get(key) is not None]
        return {"min": min(values), "max": max(values), "last": values[-1]} if values else {}

    return {
        "samples": len(seen),
        "success_rate": spread("success_rate"),
        "avg_response_time_ms": spread("avg_response_time_ms"),
        "requests_per_second": spread("requests_per_second"),
    }


def one_screen(summary: dict) -> str:
    latency, view = summary["latency_ms"], summary["suite_view"]
    lines = [
        f"scenario {summary['scenario']} against {summary['url']} for {summary['duration_s']:g} s",
        f"rate      target {summary['target_rps']:g} RPS, achieved {summary['achieved_rps']:.2f} RPS "
        f"({summary['requests']} requests, {summary['failures']} failed)",
        f"latency   p50 {latency['p50']:.2f} ms  p95 {latency['p95']:.2f} ms  p99 {latency['p99']:.2f} ms  "
        f"max {latency['max']:.2f} ms",
    ]
    for name, figures in summary["by_request"].items():
        lines.append(
            f"  {name:<22} {figures['achieved_rps']:>8.2f}/s of {figures['target_rps']:g}/s  "
            f"{figures['requests']:>7} requests  {figures['failures']} failed"
        )
    if view.get("samples"):
        lines.append(
            f"suite     /stats x{view['samples']}: success_rate {view['success_rate'].get('min')}-"
            f"{view['success_rate'].get('max')} %, avg_response_time_ms {view['avg_response_time_ms'].get('min')}-"
            f"{view['avg_response_time_ms'].get('max')}, requests_per_second up to "
            f"{view['requests_per_second'].get('max')}"
        )
    if "suite_cpu_ms_per_request" in summary:
        cpu = summary["suite_cpu_ms_per_request"]
        lines.append(
            f"suite CPU {cpu['all']:.2f} ms/request: "
            + ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items() if name != "all")
        )
    lines.append(
        f"locust    {summary['locust']['cpu_pct_of_one_core']:g} % of one core; load average "
        f"{' '.join(str(v) for v in summary['machine']['load_average'])} on {summary['machine']['cores']} cores"
    )
    verdict = "PASSED" if summary["passed"] else "FAILED: " + "; ".join(summary["failed_because"])
    lines.append(f"verdict   {verdict}")
    return "\n".join(lines)


def write(results_dir: Path, summary: dict, rows: list[dict], stats_samples: list[dict]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (results_dir / "timeline.json").write_text(json.dumps({"seconds": rows, "stats": stats_samples}, indent=1) + "\n")


def draw(results_dir: Path) -> Path:
    """chart.png from timeline.json: requests/s against the target (and the balancer's own 10 s figure), and
    p50/p95/p99 per second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = json.loads((results_dir / "summary.json").read_text())
    data = json.loads((results_dir / "timeline.json").read_text())
    seconds = data["seconds"]
    xs = [row["second"] for row in seconds]
    figure, (rate, latency) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    rate.plot(xs, [row["requests"] for row in seconds], label="locust: requests/s", color="tab:blue")
    rate.axhline(summary["target_rps"], linestyle="--", color="grey", label=f"target {summary['target_rps']:g}/s")
    stats = [s for s in data["stats"] if s.get("requests_per_second") is not None]
    if stats:
        rate.plot(
            [s["at_s"] for s in stats],
            [s["requests_per_second"] for s in stats],
            label="load balancer /stats (10 s window)",
            color="tab:green",
            marker=".",
        )
    failures = [row["failures"] for row in seconds]
    if any(failures):
        rate.bar(xs, failures, color="tab:red", label="failed/s")
    rate.set_ylabel("requests/s")
    rate.legend(loc="lower right")
    rate.grid(alpha=0.3)
    for key, colour in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        latency.plot(xs, [row[key] for row in seconds], label=key, color=colour)
    limit = summary["thresholds"]["max_p95_ms"]
    if limit is not None:
        latency.axhline(limit, linestyle="--", color="tab:orange", alpha=0.5, label=f"p95 limit {limit:g} ms")
    latency.set_ylabel("response time, ms")
    latency.set_xlabel("second of the run")
    latency.legend(loc="upper right")
    latency.grid(alpha=0.3)
    verdict = "passed" if summary["passed"] else "FAILED"
    figure.suptitle(
        f"{summary['scenario']}: {summary['achieved_rps']:.1f}/{summary['target_rps']:g} RPS, "
        f"p95 {summary['latency_ms']['p95']:.1f} ms, {summary['failures']} failed ({verdict}); "
        f"rev {summary['machine']['git_revision']}"
    )
    figure.tight_layout()
    path = results_dir / "chart.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def draw_knee(results_dir: Path) -> Path:
    """knee.png from knee.json: per step, the target and achieved rate and p50/p95/p99, the limit and the knee."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    knee = json.loads((results_dir / "knee.json").read_text())
    steps = sorted(knee["steps"], key=lambda s: s["rate"])
    rates = [s["rate"] for s in steps]
    figure, (rate, latency) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    rate.plot(rates, rates, linestyle="--", color="grey", label="target")
    rate.plot(rates, [s["achieved_rps"] for s in steps], marker="o", color="tab:blue", label="achieved")
    for s in steps:
        rate.annotate(
            "held" if s["held"] else "failed",
            (s["rate"], s["achieved_rps"]),
            fontsize=8,
            color="tab:green" if s["held"] else "tab:red",
            textcoords="offset points",
            xytext=(4, -10),
        )
    rate.set_ylabel("requests/s")
    rate.legend(loc="upper left")
    rate.grid(alpha=0.3)
    for key, colour in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        latency.plot(rates, [s["latency_ms"][key] for s in steps], marker="o", color=colour, label=key)
    if knee["limits"]["max_p95_ms"] is not None:
        latency.axhline(knee["limits"]["max_p95_ms"], linestyle="--", color="tab:orange", alpha=0.5, label="p95 limit")
    if knee["knee_rps"]:
        for axis in (rate, latency):
            axis.axvline(knee["knee_rps"], color="tab:purple", alpha=0.5)
    latency.set_yscale("log")
    latency.set_ylabel("response time, ms")
    latency.set_xlabel("target rate, requests/s")
    latency.legend(loc="upper left")
    latency.grid(alpha=0.3)
    figure.suptitle(
        f"{knee['scenario']} knee: {knee['knee_rps']:g} RPS held ({knee['step_duration']} steps); "
        f"{knee['machine']['cores']} cores, rev {knee['machine']['git_revision']}"
    )
    figure.tight_layout()
    path = results_dir / "knee.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
