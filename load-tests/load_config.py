"""A load run's settings, all from the environment (so that locust alone, a Kubernetes Job or run.py can set
them): LOAD_URL, SCENARIO, RATE, DURATION, RATE_<KIND>, thresholds, RESULTS_DIR, the account and the clean-up."""

import os
from dataclasses import dataclass
from pathlib import Path

from results import Thresholds

BLOG_WEIGHTS = {"mixed": {"list": 64, "detail": 12, "create": 4}}
BLOG_WEIGHTS["crud"] = BLOG_WEIGHTS["mixed"] | {"update": 2, "delete": 2}
BROWSE_PATHS = {
    "users": "/api/users?page=1&size=20",
    "user": "/api/users/{user_id}",
    "posts": "/api/posts?page=1&size=10",
    "post": "/api/posts/{post_id}",
    "nodes": "/api/nodes",
    "pods": "/api/pods",
    "node series": "/api/nodes/timeseries",
    "events": "/api/events",
    "clusters": "/api/clusters",
    "edge devices": "/api/edge/devices",
    "stats": "/stats",
}
# Browsed with the run's account token: user-service lists accounts to signed-in callers only.
SIGNED_IN_BROWSE = {"users"}


def duration_seconds(text: str) -> float:
    """`60`, `60s`, `2m`, `1m30s`, `1h` → seconds."""
    text, total, number = text.strip().lower(), 0.0, ""
    if text.replace(".", "", 1).isdigit():
        return float(text)
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        elif char in "hms" and number:
            total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
        else:
            raise ValueError(f"not a duration: {text!r} (use 60, 60s, 2m or 1m30s)")
    if number or total <= 0:
        raise ValueError(f"not a duration: {text!r} (use 60, 60s, 2m or 1m30s)")
    return total


def latency_limit(text: str) -> float | None:
    """Milliseconds, or `off` for no latency limit."""
    return None if text.strip().lower() in ("off", "none", "") else float(text)


def _float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


@dataclass(frozen=True)
class LoadConfig:
    url: str
    scenario: str
    duration_s: float
    rates: dict[str, float]
    thresholds: Thresholds
    results_dir: Path | None
    username: str
    password: str
    seed_posts: int
    stats_interval_s: float
    sweep_prefix: bool
    max_user_rate: float

    @classmethod
    def from_env(cls) -> "LoadConfig":
        scenario = os.environ.get("SCENARIO", "mixed").strip() or "mixed"
        rate = _float("RATE", 100.0)
        if scenario in BLOG_WEIGHTS:
            weights = BLOG_WEIGHTS[scenario]
            explicit = {k: _float(f"RATE_{k.upper()}", -1) for k in weights}
            if any(v >= 0 for v in explicit.values()):
                rates = {k: max(v, 0.0) for k, v in explicit.items()}
            else:
                rates = {k: rate * w / sum(weights.values()) for k, w in weights.items()}
        elif scenario == "health":
            rates = {"health": rate}
        elif scenario == "browse":
            rates = dict.fromkeys(BROWSE_PATHS, rate / len(BROWSE_PATHS))
        else:
            raise SystemExit(f"SCENARIO={scenario!r}: choose mixed, crud, health or browse")
        rates = {k: v for k, v in rates.items() if v > 0}
        if not rates:
            raise SystemExit("nothing to do: every rate is 0")
        results_dir = os.environ.get("RESULTS_DIR", "").strip()
        return cls(
            url=os.environ.get("LOAD_URL", "http://127.0.0.1:7100").rstrip("/"),
            scenario=scenario,
            duration_s=duration_seconds(os.environ.get("DURATION", "60s")),
            rates=rates,
            thresholds=Thresholds(
                max_p95_ms=latency_limit(os.environ.get("MAX_P95_MS", "25")),
                max_failures=int(_float("MAX_FAILURES", 0)),
                rate_tolerance_pct=_float("RATE_TOLERANCE_PCT", 2.0),
            ),
            results_dir=Path(results_dir) if results_dir else None,
            username=os.environ.get("LOAD_USERNAME", ""),
            password=os.environ.get("LOAD_PASSWORD", ""),
            seed_posts=int(_float("SEED_POSTS", 10)),
            stats_interval_s=_float("STATS_INTERVAL_S", 2.0),
            sweep_prefix=os.environ.get("CLEANUP", "") in ("1", "true", "yes"),
            max_user_rate=_float("USER_RATE", 5.0),
        )

    def needs_blog_data(self) -> bool:
        return self.scenario != "health"
