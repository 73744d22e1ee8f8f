"""The original system's clients against the real suite, through the load balancer, without a change on their side:
what its three load scripts (diag_delete, mixed_load, mixed_load_plus --cleanup) do, step by step, and a page that
reads /stats by the original system's dashboard page's rules, in Chromium (docs/compatibility.md). Written anew
from what those clients send and read: the paths, bodies and fields, and the bare JSON list of GET /api/posts."""

import asyncio
import random
import string
import time
from pathlib import Path

import httpx
import pytest

from tests.support.browser import screenshot
from tests.support.polling import eventually

ORIGINAL_PAGE = Path(__file__).with_name("original_dashboard")
# The real-traffic window is 10 s and the page reads /stats every second; the waits allow for both and a loaded machine.
WINDOW_WAIT_MS = 25_000


def random_word(length: int = 6) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=length))


@pytest.fixture
async def lb(suite):
    async with httpx.AsyncClient(base_url=suite.url("load-balancer"), timeout=15) as client:
        yield client


async def original_account(lb: httpx.AsyncClient, prefix: str) -> dict[str, str]:
    """As the scripts start: a fresh user through /api/register, its token from /api/login's `token`."""
    username, password = f"{prefix}_{random_word()}", f"secret_{random_word()}"
    registered = await lb.post(
        "/api/register", json={"username": username, "email": f"{username}@example.com", "password": password}
    )
    assert registered.status_code in (200, 201), registered.text
    assert registered.json()["status"] == "success"
    login = await lb.post("/api/login", json={"username": username, "password": password})
    assert login.status_code == 200, login.text
    answer = login.json()
    assert answer["status"] == "success"
    assert isinstance(answer["token"], str) and answer["token"]
    return {"Authorization": f"Bearer {answer['token']}"}


async def create(lb: httpx.AsyncClient, auth: dict[str, str], title: str) -> int:
    answer = await lb.post("/api/posts", json={"title": title, "content": f"{title} {random_word(30)}"}, headers=auth)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]  # the scripts take the id out of the body, whatever the status


async def bare_list(lb: httpx.AsyncClient) -> list[dict]:
    answer = await lb.get("/api/posts")
    assert answer.status_code == 200
    listing = answer.json()
    assert isinstance(listing, list), (
        f"GET /api/posts answered {type(listing).__name__}, the original system's clients read a list"
    )
    return listing


async def every_title(lb: httpx.AsyncClient) -> list[str]:
    """Every post's title, page by page (Titanium's page object, to check what the scripts left behind)."""
    titles, page = [], 1
    while True:
        listing = (await lb.get("/api/posts", params={"page": page, "size": 50})).json()
        titles += [item["title"] for item in listing["items"]]
        if page >= listing["pages"]:
            return titles
        page += 1


async def test_the_original_login_answers(lb):
    await original_account(lb, "login")
    refused = await lb.post("/api/login", json={"username": "nobody_" + random_word(), "password": "wrong-password"})
    assert refused.status_code == 401
    assert refused.json()["status"] == "failed"
    assert refused.json()["message"]


async def test_diag_delete_register_login_create_read_delete_gone_and_the_list(lb):
    auth = await original_account(lb, "diag")
    kept = await create(lb, auth, f"diag-kept-{random_word()}")
    doomed_title = f"diag-{random_word()}"
    doomed = await create(lb, auth, doomed_title)

    assert (await lb.get(f"/api/posts/{doomed}")).status_code == 200
    assert (await lb.get(f"/api/posts/{doomed}")).json()["title"] == doomed_title
    assert (await lb.delete(f"/api/posts/{doomed}", headers=auth)).status_code == 204
    assert (await lb.get(f"/api/posts/{doomed}")).status_code == 404

    # The script's closing look: `jq '.[0:5] | map({id, title})'` over the bare list, newest first.
    newest_five = [{"id": post["id"], "title": post["title"]} for post in (await bare_list(lb))[0:5]]
    assert newest_five[0]["id"] == kept
    assert doomed not in [post["id"] for post in newest_five]
    assert all(isinstance(post["id"], int) and post["title"] for post in newest_five)
    assert (await lb.delete(f"/api/posts/{kept}", headers=auth)).status_code == 204


class MixedLoad:
    """The scripts' load, in their manner: each second, a batch of every kind of request at its rate, all sent at
    once, then the next second. Every answer's status is kept by kind."""

    def __init__(self, lb: httpx.AsyncClient, auth: dict[str, str], prefix: str, seeds: list[int]) -> None:
        self.lb, self.auth, self.prefix, self.seeds = lb, auth, prefix, seeds
        self.created: list[int] = []
        # Taken from the bare list while the create that made it was still waiting for its answer: not to be
        # deleted a second time once that answer comes.
        self.deleted: set[int] = set()
        self.statuses: dict[str, list[int]] = {}
        self.listed: list[list[dict]] = []

    def _keep(self, kind: str, answer: httpx.Response) -> httpx.Response:
        self.statuses.setdefault(kind, []).append(answer.status_code)
        return answer

    async def list(self) -> None:
        answer = self._keep("list", await self.lb.get("/api/posts"))
        self.listed.append(answer.json())

    async def detail(self) -> None:
        self._keep("detail", await self.lb.get(f"/api/posts/{random.choice(self.seeds)}"))

    async def create(self) -> None:
        body = {"title": f"{self.prefix}{random_word()}", "content": f"Load gen {random_word(40)}"}
        answer = self._keep("create", await self.lb.post("/api/posts", json=body, headers=self.auth))
        if answer.json()["id"] not in self.deleted:
            self.created.append(answer.json()["id"])

    async def update(self) -> None:
        body = {"title": f"upd-{random_word(4)}"}
        self._keep(
            "update", await self.lb.patch(f"/api/posts/{random.choice(self.seeds)}", json=body, headers=self.auth)
        )

    async def delete(self) -> None:
        if self.created:  # one this run made, else one carrying its prefix in the bare list
            victim = self.created.pop(random.randrange(len(self.created)))
        else:
            mine = [p["id"] for p in await bare_list(self.lb) if p["title"].startswith(self.prefix)]
            if not mine:
                return
            victim = mine[0]
            if victim in self.created:  # its create answered while the list was on its way
                self.created.remove(victim)
        self.deleted.add(victim)
        self._keep("delete", await self.lb.delete(f"/api/posts/{victim}", headers=self.auth))

    async def run(self, seconds: int, rates: dict[str, int]) -> None:
        started = time.monotonic()
        for second in range(seconds):
            batch = [getattr(self, kind)() for kind, rate in rates.items() for _ in range(rate)]
            await asyncio.gather(*batch)
            await asyncio.sleep(max(0.0, started + second + 1 - time.monotonic()))

    async def clean_up(self) -> None:
        """--cleanup: what this run created, by id; then whatever still carries its prefix in the bare list."""
        for post_id in self.created:
            await self.lb.delete(f"/api/posts/{post_id}", headers=self.auth)
        for post in await bare_list(self.lb):
            if post["title"].startswith(self.prefix):
                await self.lb.delete(f"/api/posts/{post['id']}", headers=self.auth)


async def seeded(lb: httpx.AsyncClient, prefix: str, count: int = 5) -> tuple[dict[str, str], list[int]]:
    auth = await original_account(lb, prefix)
    return auth, [await create(lb, auth, f"seed-{n}-{random_word(4)}") for n in range(1, count + 1)]


async def remove(lb: httpx.AsyncClient, auth: dict[str, str], post_ids: list[int]) -> None:
    for post_id in post_ids:
        await lb.delete(f"/api/posts/{post_id}", headers=auth)


async def test_mixed_load_for_10_seconds(lb):
    auth, seeds = await seeded(lb, "ml")
    load = MixedLoad(lb, auth, f"ml-{random_word(4)}-", seeds)
    try:
        # The original system's 64:12:4 mix, scaled down to what a shared two-core machine serves beside its other work.
        await load.run(10, {"list": 16, "detail": 3, "create": 1})
        assert {kind: set(codes) for kind, codes in load.statuses.items()} == {
            "list": {200},
            "detail": {200},
            "create": {201},
        }
        assert len(load.statuses["list"]) == 160
        assert all(isinstance(listing, list) and len(listing) <= 20 for listing in load.listed)
        assert {"id", "title", "author", "created_at", "excerpt"} <= set(load.listed[-1][0])
        # What the scripts print at the end: the balancer's figures, with the run's traffic in them.
        balancer = (await lb.get("/stats")).json()["load-balancer"]
        assert balancer["has_real_traffic"] is True
        assert balancer["requests_per_second"] > 0
        assert 0 <= balancer["success_rate"] <= 100
    finally:
        await remove(lb, auth, seeds + load.created)


async def test_mixed_load_plus_with_cleanup_leaves_none_of_its_posts(lb):
    auth, seeds = await seeded(lb, "mlp")
    prefix = f"mlp-{random_word(4)}-"
    load = MixedLoad(lb, auth, prefix, seeds)
    try:
        await load.run(6, {"list": 8, "detail": 2, "create": 2, "update": 1, "delete": 1})
        assert {kind: set(codes) for kind, codes in load.statuses.items()} == {
            "list": {200},
            "detail": {200},
            "create": {201},
            "update": {200},
            "delete": {204},
        }
        assert any(title.startswith(prefix) for title in await every_title(lb))
        await load.clean_up()
        assert not [title for title in await every_title(lb) if title.startswith(prefix)]
    finally:
        await remove(lb, auth, seeds)


def serve_file(path: Path):
    kind = "text/html" if path.suffix == ".html" else "application/javascript"
    body = path.read_text()

    async def fulfil(route, request) -> None:
        await route.fulfill(status=200, body=body, content_type=kind)

    return fulfil


async def test_a_page_with_the_original_dashboards_rules_shows_the_suite_whole(suite, lb, browser_page):
    """The original system's dashboard page's reading of /stats, written anew: services by its keys, online when
    `service_status` is online (or `status` healthy); database and cache ONLINE when `status` is healthy; IDLE
    while the balancer says no real traffic, HEALTHY with traffic and every service up."""
    page, log = browser_page
    origin = suite.url("load-balancer")
    for name in ("index.html", "original-dashboard.js"):
        # Served on the balancer's own origin (as the original page was), without adding it to the suite.
        await page.route(f"{origin}/original/{name}", serve_file(ORIGINAL_PAGE / name))
    await page.goto(f"{origin}/original/index.html")

    await page.wait_for_function(
        "() => document.querySelector('#overall').textContent === 'IDLE'", timeout=WINDOW_WAIT_MS
    )
    services = await page.locator("#services li").evaluate_all("items => items.map(i => i.dataset.name)")
    assert services == [
        "Load Balancer",
        "API Gateway",
        "Auth Service",
        "User Service",
        "Blog Service",
        "Database",
        "Cache",
    ]
    assert await page.locator("#services li[data-online=true]").count() == 7
    assert await page.inner_text("#active") == "7/7"
    assert await page.inner_text("#db") == "ONLINE"
    assert await page.inner_text("#cache") == "ONLINE"

    async def traffic() -> bool:
        for _ in range(20):
            assert (await lb.get("/api/posts")).status_code == 200
        return await page.inner_text("#overall") == "HEALTHY"

    await eventually(traffic, 20, every_s=0.5)
    assert float(await page.inner_text("#rps")) > 0
    await screenshot(page, "original-dashboard-rules")
    await page.wait_for_function(
        "() => document.querySelector('#overall').textContent === 'IDLE'", timeout=WINDOW_WAIT_MS
    )
    assert log.errors == []
