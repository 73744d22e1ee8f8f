"""The load tests themselves, run for real (locust against the suite the system tests start): what they report,
what they leave behind, the original system's scripts and their exit codes. Speed is never asserted here: the latency
limit is off except where a run must fail."""

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from aiohttp import ClientSession, web
from PIL import Image

from tests.support.browser import screenshot
from tests.support.servers import serving

LOAD_TESTS = Path(__file__).resolve().parents[2] / "load-tests"
RUN_PY = [sys.executable, str(LOAD_TESTS / "run.py")]
RESULT_FILES = (
    "locust_stats.csv",
    "locust_stats_history.csv",
    "locust_failures.csv",
    "report.html",
    "summary.json",
    "timeline.json",
    "chart.png",
    "locust.log",
)


def run(argv: list[str], timeout_s: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=LOAD_TESTS.parent)


def summary_of(results_dir: Path) -> dict:
    return json.loads((results_dir / "summary.json").read_text())


def post_ids(url: str) -> set[int]:
    ids, page = set(), 1
    while True:
        listing = httpx.get(f"{url}/api/posts", params={"page": page, "size": 50}, timeout=10).json()
        ids |= {item["id"] for item in listing["items"]}
        if page >= listing["pages"]:
            return ids
        page += 1


def titles_starting(url: str, prefix: str) -> list[str]:
    listing = httpx.get(f"{url}/api/posts", params={"size": 50}, timeout=10).json()
    return [item["title"] for item in listing["items"] if item["title"].startswith(prefix)]


@pytest.fixture
def lb_url(suite) -> str:
    return suite.url("load-balancer")


@pytest.fixture
def account(lb_url) -> dict[str, str]:
    """A user of the test's own, for runs given --username/--password."""
    username = f"lt{uuid.uuid4().hex[:10]}"
    password = "load test password"
    answer = httpx.post(
        f"{lb_url}/api/users", json={"username": username, "email": f"{username}@example.com", "password": password}
    )
    assert answer.status_code == 201, answer.text
    return {"username": username, "password": password}


def test_a_15_second_run_at_20_rps_reports_everything_and_leaves_the_posts_as_they_were(lb_url, tmp_path):
    before = post_ids(lb_url)
    done = run([*RUN_PY, "load", "--url", lb_url, "--rate", "20", "--duration", "15s", "--max-p95-ms", "off",
                "--rate-tolerance-pct", "5", "--results-dir", str(tmp_path)])  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = summary_of(tmp_path)
    assert summary["failures"] == 0
    assert summary["target_rps"] == 20
    assert abs(summary["achieved_rps"] - 20) <= 1.0
    assert summary["requests"] == pytest.approx(300, abs=15)
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"] <= summary["latency_ms"]["p99"]
    assert summary["machine"]["cores"] >= 1 and summary["machine"]["git_revision"]
    assert summary["suite_view"]["samples"] >= 5  # /stats every 2 s for 15 s
    assert summary["suite_view"]["success_rate"]["min"] == 100.0
    assert "achieved" in done.stdout and "PASSED" in done.stdout
    for name in RESULT_FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    history = (tmp_path / "locust_stats_history.csv").read_text().splitlines()
    assert len(history) > 10  # one row per second and request name, not just the totals
    with Image.open(tmp_path / "chart.png") as chart:
        assert chart.format == "PNG"
        chart.verify()
    seconds = json.loads((tmp_path / "timeline.json").read_text())["seconds"]
    assert len(seconds) == 15 and sum(s["requests"] for s in seconds) == summary["requests"]
    assert post_ids(lb_url) == before


def test_a_threshold_the_suite_cannot_meet_fails_the_run(lb_url, tmp_path):
    done = run([*RUN_PY, "load", "--url", lb_url, "--scenario", "health", "--rate", "10", "--duration", "3s",
                "--max-p95-ms", "0.001", "--results-dir", str(tmp_path)])  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    summary = summary_of(tmp_path)
    assert summary["passed"] is False and summary["failures"] == 0
    assert any(reason.startswith("p95 ") for reason in summary["failed_because"])
    assert "FAILED: p95" in done.stdout


def test_mixed_load_sh_takes_the_originals_flags_and_splits_64_12_4(lb_url, tmp_path):
    before = post_ids(lb_url)
    done = run(["sh", str(LOAD_TESTS / "mixed_load.sh"), "--url", lb_url, "--duration", "5s", "--rate-list", "64",
                "--rate-detail", "12", "--rate-create", "4", "--results-dir", str(tmp_path)])  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    counts = {name: figures["requests"] for name, figures in summary_of(tmp_path)["by_request"].items()}
    assert set(counts) == {"list", "detail", "create"}
    for name, rate in {"list": 64, "detail": 12, "create": 4}.items():
        assert counts[name] == pytest.approx(rate * 5, rel=0.05), counts
    assert post_ids(lb_url) == before


def test_mixed_load_plus_cleanup_leaves_no_post_it_created(lb_url, tmp_path):
    before = post_ids(lb_url)
    done = run(["sh", str(LOAD_TESTS / "mixed_load_plus.sh"), "--url", lb_url, "--duration", "4s", "--rate-list",
                "8", "--rate-detail", "2", "--rate-create", "4", "--rate-update", "2", "--rate-delete", "2",
                "--cleanup", "--results-dir", str(tmp_path)])  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    by_request = summary_of(tmp_path)["by_request"]
    assert {name: f["failures"] for name, f in by_request.items()} == dict.fromkeys(
        ("list", "detail", "create", "update", "delete"), 0
    )
    assert by_request["delete"]["requests"] == pytest.approx(8, abs=1)
    assert post_ids(lb_url) == before
    assert titles_starting(lb_url, "ml_") == []


def test_mixed_load_plus_cleanup_alone_removes_load_test_posts_left_behind(lb_url, account):
    token = httpx.post(f"{lb_url}/api/auth/login", json=account).json()["access_token"]
    for n in range(3):
        left = httpx.post(f"{lb_url}/api/posts", json={"title": f"ml_leftover {n}", "content": "from a killed run"},
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert left.status_code == 201
    kept = httpx.post(f"{lb_url}/api/posts", json={"title": "a real post", "content": "not a load test's"},
                      headers={"Authorization": f"Bearer {token}"}).json()  # fmt: skip
    done = run(["sh", str(LOAD_TESTS / "mixed_load_plus.sh"), "--url", lb_url, "--cleanup", "--username",
                account["username"], "--password", account["password"]])  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "'posts_removed': 3" in done.stdout
    assert titles_starting(lb_url, "ml_leftover") == []
    assert httpx.get(f"{lb_url}/api/posts/{kept['id']}").status_code == 200


def test_diag_delete_passes(lb_url):
    before = post_ids(lb_url)
    done = run(["sh", str(LOAD_TESTS / "diag_delete.sh"), "--url", lb_url])
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split()[1] for line in done.stdout.splitlines() if line.startswith("ok")] == [
        "create", "read", "delete", "read-after-delete"
    ]  # fmt: skip
    assert post_ids(lb_url) == before


async def test_diag_delete_names_the_step_when_a_post_cannot_be_deleted(lb_url, account):
    """Through a proxy that refuses every DELETE, as a balancer or policy in the way would."""

    async def forward(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return web.json_response({"detail": "deletes are refused here"}, status=403)
        async with ClientSession() as session, session.request(
            request.method, lb_url + request.path_qs, data=await request.read(),
            headers={k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")},
        ) as answer:  # fmt: skip
            return web.Response(body=await answer.read(), status=answer.status, content_type=answer.content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    async with serving(app) as refusing_url:
        process = await asyncio.create_subprocess_exec(
            "sh", str(LOAD_TESTS / "diag_delete.sh"), "--url", refusing_url, "--username",
            account["username"], "--password", account["password"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
    assert process.returncode == 13, output
    assert "FAILED at delete: DELETE /api/posts/" in output and "expected 204" in output
    cleaned = run([*RUN_PY, "sweep", "--url", lb_url, "--username", account["username"], "--password",
                   account["password"]])  # fmt: skip
    assert "'posts_removed': 1" in cleaned.stdout, cleaned.stdout


async def test_a_locust_run_moves_the_dashboards_rps_chart(lb_url, browser_page, tmp_path):
    page, log = browser_page
    await page.goto(lb_url + "/")
    await page.wait_for_function(
        "() => document.querySelector('#traffic-badge').textContent === 'IDLE'", timeout=25_000
    )
    process = await asyncio.create_subprocess_exec(
        *RUN_PY, "load", "--url", lb_url, "--scenario", "health", "--rate", "30", "--duration", "14s",
        "--max-p95-ms", "off", "--rate-tolerance-pct", "10", "--results-dir", str(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        await page.wait_for_function(
            "() => document.querySelector('#traffic-badge').textContent === 'ACTIVE'", timeout=20_000
        )
        # The balancer's 10 s window fills up: the chart's newest points climb towards locust's 30/s.
        await page.wait_for_function(
            "() => Math.max(...Chart.getChart('rps-chart').data.datasets[0].data.slice(-3)) >= 15", timeout=20_000
        )
        await screenshot(page, "dashboard-under-locust")
    finally:
        output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
    assert process.returncode == 0, output
    assert summary_of(tmp_path)["failures"] == 0
    assert log.errors == []
