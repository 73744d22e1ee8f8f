import asyncio
import contextlib
import time

import aiohttp
import pytest
from aiohttp import web

from tests.support.polling import eventually
from tests.support.servers import AppServer, free_port
from titanium_common.aiohttp_app import UPSTREAM, attach_client_session, attach_upstream_client, create_aiohttp_app
from titanium_common.pool import ReplicaPool, attach_pools, proxy_to_pool
from titanium_common.settings import ServiceSettings

NAME = web.AppKey("name", str)


async def whoami(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"replica": request.app[NAME], "method": request.method, "size": len(body)})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def replica_app(name: str) -> web.Application:
    app = web.Application()
    app[NAME] = name
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", whoami)
    return app


@pytest.fixture
async def replicas(servers) -> list[AppServer]:
    """Two replicas, "a" and "b", each of which a test may stop and start again on its port."""
    return [await servers(replica_app("a")), await servers(replica_app("b"))]


@pytest.fixture
def proxy_for(servers):
    """`await proxy_for(pool, **upstream client options)`: a proxy in front of `pool`, served on loopback; its base
    URL."""

    async def start(pool: ReplicaPool, **client_options) -> str:
        app = create_aiohttp_app(ServiceSettings(service_name="pool-proxy", env="test"))
        attach_client_session(app)
        attach_upstream_client(app, **client_options)
        attach_pools(app, [pool])

        async def forward(request: web.Request) -> web.StreamResponse:
            return await proxy_to_pool(request, request.app[UPSTREAM], pool, max_body_bytes=1024 * 1024)

        app.router.add_route("*", "/{tail:.*}", forward)
        return (await servers(app)).url

    return start


def test_least_outstanding_picks_the_least_busy_and_spreads_ties():
    pool = ReplicaPool("up", ["http://a", "http://b", "http://c"])
    a, b, c = pool.replicas
    assert [pool.pick().url for _ in range(3)] == ["http://a", "http://b", "http://c"]
    a.outstanding, b.outstanding, c.outstanding = 3, 1, 2
    assert pool.pick() is b
    b.healthy = False
    assert pool.pick() is c
    assert pool.pick(exclude=c) is a


def test_round_robin_skips_unhealthy_replicas():
    pool = ReplicaPool("up", ["http://a", "http://b", "http://c"], strategy="round-robin")
    pool.replicas[1].healthy = False
    assert [pool.pick().url for _ in range(4)] == ["http://a", "http://c", "http://c", "http://a"]
    for replica in pool.replicas:
        replica.healthy = False
    assert pool.pick() is None


def test_a_pool_needs_a_url():
    with pytest.raises(ValueError, match="no replica"):
        ReplicaPool("up", [])


async def test_a_dead_replica_is_retried_elsewhere_ejected_and_readmitted(replicas, proxy_for):
    a, b = replicas
    pool = ReplicaPool("demo", [a.url, b.url], strategy="round-robin", eject_after_failures=3, check_interval_s=60)
    url = await proxy_for(pool)
    async with aiohttp.ClientSession() as http:
        seen = set()
        for _ in range(4):
            async with http.get(f"{url}/x") as r:
                seen.add((await r.json())["replica"])
        assert seen == {"a", "b"}
        await b.stop()
        for _ in range(10):
            async with http.get(f"{url}/x") as r:
                assert r.status == 200
                assert (await r.json())["replica"] == "a"
        dead = pool.replicas[1]
        assert not dead.healthy
        assert dead.connect_failures == 3  # ejected after 3, then no longer tried
        assert "Connect call failed" in dead.last_error
        await b.start()
        async with aiohttp.ClientSession() as checks:
            await pool.check_all(checks)
        assert dead.healthy
        seen = set()
        for _ in range(4):
            async with http.get(f"{url}/x") as r:
                seen.add((await r.json())["replica"])
        assert seen == {"a", "b"}


async def test_a_post_whose_connect_failed_goes_to_another_replica(replicas, proxy_for):
    a, b = replicas
    await a.stop()
    pool = ReplicaPool("demo", [a.url, b.url], strategy="round-robin", check_interval_s=60)
    url = await proxy_for(pool)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # one of them is first sent to the stopped replica
            async with http.post(f"{url}/x", data=b"once") as r:
                assert (await r.json()) == {"replica": "b", "method": "POST", "size": 4}
    assert pool.replicas[0].connect_failures >= 1  # the stopped replica was tried, and each POST still landed


@contextlib.asynccontextmanager
async def replica_that_reads_then_drops():
    """A replica that reads a request's head, then drops the connection: (its URL, the heads it read)."""
    received: list[bytes] = []

    async def read_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        writer.transport.abort()

    server = await asyncio.start_server(read_then_drop, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", received
    finally:
        server.close()
        await server.wait_closed()


async def test_a_post_that_was_sent_is_never_sent_again(replicas, proxy_for):
    """A replica that reads the request, then drops the connection, may have acted on it: 502, not a resend."""
    async with replica_that_reads_then_drops() as (dropping_url, received):
        pool = ReplicaPool("demo", [dropping_url, replicas[1].url], strategy="round-robin", check_interval_s=60)
        url = await proxy_for(pool)
        async with aiohttp.ClientSession() as http:
            answers = []
            for _ in range(2):
                async with http.post(f"{url}/x", data=b"once") as r:
                    answers.append((r.status, await r.json()))
    assert len(received) == 1 and received[0].startswith(b"POST /x ")
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 502], answers
    assert {"replica": "b", "method": "POST", "size": 4} in [body for _, body in answers]


async def test_a_get_dropped_before_any_answer_goes_to_another_replica(replicas, proxy_for):
    """A replica killed with requests in flight: a GET (safe: it changes nothing) is sent to another replica."""
    async with replica_that_reads_then_drops() as (dropping_url, received):
        pool = ReplicaPool("demo", [dropping_url, replicas[1].url], strategy="round-robin", check_interval_s=60)
        url = await proxy_for(pool)
        async with aiohttp.ClientSession() as http:
            answers = []
            for _ in range(2):
                async with http.get(f"{url}/x") as r:
                    answers.append((r.status, await r.json()))
    assert received and all(r.startswith(b"GET /x ") for r in received)
    assert answers == [(200, {"replica": "b", "method": "GET", "size": 0})] * 2


async def test_no_healthy_replica_is_503_at_once(replicas, proxy_for):
    a, b = replicas
    await a.stop()
    await b.stop()
    pool = ReplicaPool("demo", [a.url, b.url], eject_after_failures=1, check_interval_s=60)
    url = await proxy_for(pool)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/x") as r:
            assert r.status == 502
        assert pool.healthy_count == 0
        started = time.monotonic()
        async with http.get(f"{url}/x") as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
            assert (await r.json())["detail"] == "upstream demo has no healthy replica"
        assert time.monotonic() - started < 1.0


async def test_active_checks_eject_after_failed_checks_and_readmit(replicas, proxy_for):
    a, b = replicas
    pool = ReplicaPool("demo", [a.url, b.url], check_interval_s=0.05, check_timeout_s=0.5, unhealthy_after_checks=2)
    await proxy_for(pool)  # runs the checker while the app runs
    await b.stop()
    for _ in range(200):
        if not pool.replicas[1].healthy:
            break
        await asyncio.sleep(0.02)
    assert not pool.replicas[1].healthy
    assert pool.replicas[0].healthy
    assert pool.snapshot()["healthy"] == 1
    await b.start()
    for _ in range(200):
        if pool.replicas[1].healthy:
            break
        await asyncio.sleep(0.02)
    assert pool.replicas[1].healthy


class Resolver:
    """An injectable resolver: what the name resolves to now, and how often it was asked."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.calls = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        if not self.addresses:
            raise OSError(f"cannot resolve {host}")
        return list(self.addresses)


async def test_a_name_with_two_addresses_is_two_replicas_spread_and_ejected_separately(servers, proxy_for):
    port = free_port()
    # Two backends on the same port of two loopback addresses, as two pods behind one headless Service.
    await servers(replica_app("two"), port, "127.0.0.2")
    three = await servers(replica_app("three"), port, "127.0.0.3")
    resolver = Resolver(["127.0.0.2", "127.0.0.3"])
    pool = ReplicaPool(
        "svc",
        [f"http://gateway.replicas.test:{port}"],
        strategy="round-robin",
        eject_after_failures=1,
        check_interval_s=0.1,
        check_timeout_s=0.5,
        resolve_interval_s=0.1,
        resolver=resolver,
    )
    proxy = await proxy_for(pool)
    async with aiohttp.ClientSession() as http:
        seen = []
        for _ in range(20):
            async with http.get(f"{proxy}/x") as answer:
                assert answer.status == 200
                seen.append((await answer.json())["replica"])
        assert {"two", "three"} == set(seen)
        assert abs(seen.count("two") - seen.count("three")) <= 2
        members = pool.snapshot()["members"]
        assert {m["url"] for m in members} == {f"http://127.0.0.2:{port}", f"http://127.0.0.3:{port}"}
        assert {m["member"] for m in members} == {f"http://gateway.replicas.test:{port}"}
        await three.stop()
        # The dead address is ejected (passively on the first refused connect, or by its health checks); every
        # request still succeeds, retried on the live one.
        for _ in range(20):
            async with http.get(f"{proxy}/x") as answer:
                assert answer.status == 200
                assert (await answer.json())["replica"] == "two"
        dead = next(r for r in pool.replicas if r.url.startswith("http://127.0.0.3"))
        assert not dead.healthy
        assert next(r for r in pool.replicas if r.url.startswith("http://127.0.0.2")).healthy
        # The name stops resolving: the last addresses stay; then it resolves to the live address only.
        resolver.addresses = []
        calls = resolver.calls
        for _ in range(100):
            if resolver.calls > calls + 1:
                break
            await asyncio.sleep(0.02)
        assert len(pool.replicas) == 2
        assert "cannot resolve" in pool.snapshot()["dns"][0]["error"]
        resolver.addresses = ["127.0.0.2"]
        for _ in range(100):
            if len(pool.replicas) == 1:
                break
            await asyncio.sleep(0.02)
        assert [r.url for r in pool.replicas] == [f"http://127.0.0.2:{port}"]
        assert pool.snapshot()["dns"][0]["addresses"] == ["127.0.0.2"]


async def test_a_name_keeps_each_address_health_across_resolutions():
    resolver = Resolver(["10.0.0.1", "10.0.0.2"])
    pool = ReplicaPool("svc", ["http://svc:8000"], resolver=resolver, eject_after_failures=1)
    assert [r.url for r in pool.replicas] == ["http://svc:8000"]  # before the first resolution: the name itself
    await pool.resolve()
    _, second = pool.replicas
    pool.connect_failed(second, "refused")
    resolver.addresses = ["10.0.0.2", "10.0.0.3"]
    await pool.resolve()
    assert [r.url for r in pool.replicas] == ["http://10.0.0.2:8000", "http://10.0.0.3:8000"]
    assert pool.replicas[0] is second and not second.healthy
    assert pool.replicas[1].healthy


async def test_the_real_resolver_and_address_literals():
    pool = ReplicaPool("svc", ["http://localhost:8000", "http://127.0.0.1:9000", "http://[::1]:9001"])
    assert len(pool.dns_members) == 1  # literals are fixed replicas
    await pool.resolve()
    urls = [r.url for r in pool.replicas]
    assert "http://127.0.0.1:8000" in urls or "http://[::1]:8000" in urls
    assert urls[-2:] == ["http://127.0.0.1:9000", "http://[::1]:9001"]


class Stallable:
    """A replica that can stall as a SIGSTOPped process does: connections are accepted, nothing is answered (its
    /health neither) until it resumes, and then every request it holds is answered."""

    def __init__(self, name: str) -> None:
        self.running = asyncio.Event()
        self.running.set()
        self.status = 200
        self.app = replica_app(name)
        self.app.middlewares.append(self.gate)

    @web.middleware
    async def gate(self, request: web.Request, handler) -> web.StreamResponse:
        await self.running.wait()
        if self.status != 200 and request.path != "/health":
            return web.json_response({"detail": "unavailable"}, status=self.status)
        return await handler(request)


async def _get(http: aiohttp.ClientSession, url: str, method: str = "GET") -> tuple[int, str | None]:
    async with http.request(method, url) as r:
        body = await r.json()
        return r.status, body.get("replica")


# The proxy's response timeout in these tests: short, so that a stall is seen quickly.
RESPONSE_S = 0.3


async def test_a_stalled_only_replica_is_ejected_after_timeouts_then_fails_fast_and_is_back_when_it_answers(
    servers, proxy_for
):
    stalled = Stallable("a")
    a = await servers(stalled.app)
    # The regular check would come only after a minute: re-admission here is the quick check of a replica that is out.
    pool = ReplicaPool("demo", [a.url], eject_after_failures=3, check_interval_s=60, check_timeout_s=5)
    url = await proxy_for(pool, response_s=RESPONSE_S)
    stalled.running.clear()
    async with aiohttp.ClientSession() as http:
        waited = await asyncio.gather(*(_get(http, f"{url}/x") for _ in range(3)))
        assert [status for status, _ in waited] == [504] * 3
        assert not pool.replicas[0].healthy
        # The stall is known: the next requests are refused at once instead of each waiting for the timeout.
        for _ in range(5):
            assert await _get(http, f"{url}/x") == (503, None)
        stalled.running.set()
        await eventually(lambda: pool.replicas[0].healthy)
        assert await _get(http, f"{url}/x") == (200, "a")


async def test_with_two_replicas_a_stalled_one_costs_no_get_and_is_ejected(servers, proxy_for):
    stalled = Stallable("a")
    a = await servers(stalled.app)
    b = await servers(replica_app("b"))
    pool = ReplicaPool("demo", [a.url, b.url], strategy="round-robin", check_interval_s=60, check_timeout_s=5)
    url = await proxy_for(pool, response_s=RESPONSE_S)
    stalled.running.clear()
    async with aiohttp.ClientSession() as http:
        answers = [await _get(http, f"{url}/x") for _ in range(8)]
        # A GET that timed out on the stalled replica was answered by the other: none failed.
        assert answers == [(200, "b")] * 8
        assert not pool.replicas[0].healthy
        # A POST that reached a stalled replica may have been acted on: never sent again.
        pool.replicas[0].healthy = True
        pool._next = 0
        assert (await _get(http, f"{url}/x", "POST"))[0] == 504
    stalled.running.set()


async def test_replicas_answering_502_503_504_in_a_row_are_ejected_but_never_the_last(servers, proxy_for):
    failing = Stallable("a")
    failing.status = 503
    a = await servers(failing.app)
    b = await servers(replica_app("b"))
    pool = ReplicaPool(
        "demo", [a.url, b.url], strategy="round-robin", eject_after_5xx=3, ejection_s=60, check_interval_s=60
    )
    url = await proxy_for(pool)
    async with aiohttp.ClientSession() as http:
        answers = [await _get(http, f"{url}/x") for _ in range(12)]
    # The failing replica's answers pass through until it has given three in a row; then only "b" answers, and
    # its /health answering 200 does not bring it back before its ejection time.
    assert answers.count((503, None)) == 3 and answers[-6:] == [(200, "b")] * 6
    assert not pool.replicas[0].healthy and pool.replicas[0].ejections == 1
    async with aiohttp.ClientSession() as checker:
        await pool.check(checker, pool.replicas[0])
    assert not pool.replicas[0].healthy

    only = ReplicaPool("alone", [a.url], eject_after_5xx=3, check_interval_s=60)
    url = await proxy_for(only)
    async with aiohttp.ClientSession() as http:
        assert [(await _get(http, f"{url}/x"))[0] for _ in range(6)] == [503] * 6
    assert only.replicas[0].healthy  # its own answers are the best there is
