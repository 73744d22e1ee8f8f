"""Titanium's load scenarios for locust, driven entirely by the environment:

    LOAD_URL=http://127.0.0.1:7100 RATE=100 DURATION=60s SCENARIO=mixed locust -f load-tests/locustfile.py --headless

Scenarios (SCENARIO):
  mixed   the original system's blog mix: list posts, read one, create one (logged in), split 64:12:4 of RATE
  crud    mixed plus update and delete (64:12:4:2:2), as `mixed_load_plus.sh`
  health  GET /api/health at RATE (the original system's `hey -z 30s -q 100`)
  browse  every service through the load balancer in turn: users, posts, nodes, pods, series, events, clusters,
          edge devices, /stats
RATE_LIST, RATE_DETAIL, RATE_CREATE, RATE_UPDATE, RATE_DELETE set the blog rates one by one instead (RATE is then
their sum). Every request kind is its own user class on a fixed schedule (`paced`), at most USER_RATE (5) requests/s
per user with a random phase, so each rate is exact and smooth (100 users at 1/s would fire in one burst each
second) and holds while a response takes up to 1/USER_RATE s.

The run makes its own data (a temporary `ml_…` account unless LOAD_USERNAME/LOAD_PASSWORD are given, SEED_POSTS posts
to read) before the window opens and removes what it made when it ends (CLEANUP=1 also sweeps by its title prefix).
Figures count only requests started inside the DURATION window; latency percentiles are exact. While it runs, the
load balancer's /stats is sampled every STATS_INTERVAL_S. At the end it prints a one-screen summary, writes
`summary.json` and `timeline.json` into RESULTS_DIR if set, and exits 1 when a threshold fails (MAX_P95_MS 25,
MAX_FAILURES 0, RATE_TOLERANCE_PCT 2), 3 when the test data could not be made.
"""

import logging
import math
import random
import resource
import time
from dataclasses import dataclass, field

import gevent
import requests
import results
from load_config import BROWSE_PATHS, SIGNED_IN_BROWSE, LoadConfig
from load_data import LoadDataError, RunData
from locust import LoadTestShape, events
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust.runners import MasterRunner

log = logging.getLogger("load-tests")

EXIT_THRESHOLD_FAILED, EXIT_NO_TEST_DATA = 1, 3
CONFIG = LoadConfig.from_env()


@dataclass
class RunState:
    data: RunData | None = None
    setup_error: str = ""
    window_opened_at: float = 0.0
    cpu_at_open: float = 0.0
    cpu_at_close: float = 0.0
    samples: list[results.Sample] = field(default_factory=list)
    stats_samples: list[dict] = field(default_factory=list)
    deletable: list[int] = field(default_factory=list)
    sampler: gevent.Greenlet | None = None

    def in_window(self, started_at: float) -> bool:
        return self.window_opened_at > 0 and 0 <= started_at - self.window_opened_at < CONFIG.duration_s


RUN = RunState()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the request kinds -------------------------------------------------------------------------------------------
def _list(user: FastHttpUser) -> None:
    user.client.get("/api/posts?offset=0&limit=10", name="list")


def _detail(user: FastHttpUser) -> None:
    user.client.get(f"/api/posts/{random.choice(RUN.data.seed_ids)}", name="detail")


def _create(user: FastHttpUser) -> None:
    body = {"title": f"{RUN.data.prefix} {random.getrandbits(32):08x}", "content": "load test post " * 8}
    with user.client.post(
        "/api/posts", json=body, headers=RUN.data.account.headers, name="create", catch_response=True
    ) as answer:
        if answer.status_code == 201:
            RUN.data.created_ids.append(answer.json()["id"])
        else:
            answer.failure(f"create answered {answer.status_code}")


def _update(user: FastHttpUser) -> None:
    post_id = random.choice(RUN.data.seed_ids)
    body = {"title": f"{RUN.data.prefix} seed {post_id} edited {random.getrandbits(16)}"}
    user.client.patch(f"/api/posts/{post_id}", json=body, headers=RUN.data.account.headers, name="update")


def _delete(user: FastHttpUser) -> None:
    post_id = RUN.deletable.pop() if RUN.deletable else None
    if post_id is None:  # more deletes than the pool made before the window: make one first, outside the figures
        post_id = RUN.data.create_outside_figures()
    user.client.delete(f"/api/posts/{post_id}", headers=RUN.data.account.headers, name="delete")


def _health(user: FastHttpUser) -> None:
    user.client.get("/api/health", name="health")


def _browse(name: str):
    template = BROWSE_PATHS[name]
    signed_in = name in SIGNED_IN_BROWSE

    def browse(user: FastHttpUser) -> None:
        path = template.format(user_id=RUN.data.account.user_id or 1, post_id=random.choice(RUN.data.seed_ids))
        user.client.get(path, name=name, headers=RUN.data.account.headers if signed_in else None)

    return browse


KINDS = {
    "list": _list,
    "detail": _detail,
    "create": _create,
    "update": _update,
    "delete": _delete,
    "health": _health,
} | {name: _browse(name) for name in BROWSE_PATHS}


def paced(rate: float):
    """A wait time that keeps a user on the schedule phase + k/rate, so that a window of D seconds holds D x rate
    requests (locust's `constant_throughput` fires its second request at once, one extra per user). A response
    slower than one interval makes the next request go at once; more than one behind, the schedule starts again
    from now rather than catching up in a burst."""
    interval = 1 / rate

    def wait_time(user) -> float:
        now = time.time()
        user.next_at = max(user.next_at + interval, now - interval)
        return max(0.0, user.next_at - now)

    return wait_time


def _user_class(kind: str, rate: float) -> type[FastHttpUser]:
    users = max(1, math.ceil(rate / CONFIG.max_user_rate))
    per_user = rate / users
    action = KINDS[kind]

    def on_start(self) -> None:
        if RUN.setup_error:
            raise StopUser()
        # A random phase, so that the users of one kind do not fire together.
        self.next_at = time.time() + random.uniform(0, 1 / per_user)
        gevent.sleep(self.next_at - time.time())

    def send(self) -> None:
        action(self)

    return type(
        f"{kind.title().replace(' ', '')}User",
        (FastHttpUser,),
        {
            "host": CONFIG.url,
            "fixed_count": users,
            "wait_time": paced(per_user),
            "network_timeout": 10.0,
            "connection_timeout": 5.0,
            "on_start": on_start,
            "tasks": [send],
        },
    )


USER_CLASSES = [_user_class(kind, rate) for kind, rate in CONFIG.rates.items()]
globals().update({cls.__name__: cls for cls in USER_CLASSES})
TOTAL_USERS = sum(cls.fixed_count for cls in USER_CLASSES)


class FixedRateForDuration(LoadTestShape):
    """Every user at once (their phases spread them), then stop when the DURATION window has passed."""

    def tick(self):
        if RUN.setup_error or (RUN.window_opened_at and time.time() - RUN.window_opened_at >= CONFIG.duration_s):
            return None
        return TOTAL_USERS, TOTAL_USERS


# ---- the run's data, figures and verdict --------------------------------------------------------------------------
def _sample_stats() -> None:
    http = requests.Session()
    while True:
        at_s = time.time() - RUN.window_opened_at
        try:
            balancer = http.get(f"{CONFIG.url}/stats", timeout=5).json().get("load-balancer", {})
            RUN.stats_samples.append(
                {"at_s": round(at_s, 2)}
                | {k: balancer.get(k) for k in ("requests_per_second", "success_rate", "avg_response_time_ms")}
            )
        except (requests.RequestException, ValueError) as exc:
            RUN.stats_samples.append({"at_s": round(at_s, 2), "error": str(exc)})
        gevent.sleep(CONFIG.stats_interval_s)


@events.test_start.add_listener
def prepare(environment, **_) -> None:
    if isinstance(environment.runner, MasterRunner):
        return  # one process only: the figures and the data live where the users run
    try:
        if CONFIG.needs_blog_data():
            RUN.data = RunData.prepare(
                CONFIG.url, username=CONFIG.username, password=CONFIG.password, seed_posts=max(CONFIG.seed_posts, 1)
            )
            deletes = math.ceil(CONFIG.rates.get("delete", 0) * CONFIG.duration_s)
            RUN.deletable = [RUN.data.create_outside_figures() for _ in range(deletes)]
    except (LoadDataError, requests.RequestException) as exc:
        RUN.setup_error = f"could not make the test data: {exc}"
        log.error(RUN.setup_error)
        return
    RUN.window_opened_at = time.time()
    RUN.cpu_at_open = _cpu_seconds()
    RUN.sampler = gevent.spawn(_sample_stats)


@events.request.add_listener
def record(name, response_time, exception, start_time=None, **_) -> None:
    started_at = start_time if start_time is not None else time.time() - response_time / 1000
    if RUN.in_window(started_at):
        RUN.samples.append(
            results.Sample(started_at - RUN.window_opened_at, name, float(response_time), exception is not None)
        )


@events.test_stop.add_listener
def clean_up(environment, **_) -> None:
    RUN.cpu_at_close = _cpu_seconds()
    if RUN.sampler is not None:
        RUN.sampler.kill()
    if RUN.data is not None:
        removed = RUN.data.clean_up(sweep_prefix=CONFIG.sweep_prefix)
        log.info("clean-up: %s", removed)
        RUN.data = None


@events.quitting.add_listener
def report(environment, **_) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    if RUN.setup_error:
        print(RUN.setup_error, flush=True)
        environment.process_exit_code = EXIT_NO_TEST_DATA
        return
    summary = results.summarise(
        scenario=CONFIG.scenario,
        url=CONFIG.url,
        duration_s=CONFIG.duration_s,
        target_rates=CONFIG.rates,
        samples=RUN.samples,
        thresholds=CONFIG.thresholds,
        suite_view=results.suite_view(RUN.stats_samples),
        locust_cpu_s=RUN.cpu_at_close - RUN.cpu_at_open,
    )
    if CONFIG.results_dir is not None:
        results.write(CONFIG.results_dir, summary, results.timeline(RUN.samples, CONFIG.duration_s), RUN.stats_samples)
    print(results.one_screen(summary), flush=True)
    environment.process_exit_code = 0 if summary["passed"] else EXIT_THRESHOLD_FAILED
