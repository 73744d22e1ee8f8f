"""REPLICAS=2: ops-mcp assembles a trace whose requests crossed both replicas of the gateway and of auth-service."""

import asyncio
import secrets
import uuid

import asyncpg
import httpx
import pytest

from tests.support.databases import POSTGRES_DSN, PrivateRedis
from tests.support.servers import free_port
from titanium_dev.suite import SERVICES, Suite

from .conftest import ADMIN, OUTPUT

WANTED = ("auth-service", "user-service", "ops-mcp", "api-gateway", "load-balancer")


async def _execute(statement: str) -> None:
    admin = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture
def postgres_schema():
    schema = f"traces_{uuid.uuid4().hex[:8]}"
    asyncio.run(_execute(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        asyncio.run(_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def test_a_trace_across_both_replicas_is_assembled_whole(tmp_path, postgres_schema):
    services = tuple(s for s in SERVICES if s.name in WANTED)
    ports = {name: free_port() for name in WANTED} | {f"{name}-2": free_port() for name in WANTED}
    redis = PrivateRedis().start()
    environment = {
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
        "DATABASE_URL": POSTGRES_DSN,
        "DATABASE_SCHEMA": postgres_schema,
        # Alternating replicas, so that the trace's four requests cross both of each pool.
        "BALANCE_STRATEGY": "round-robin",
    }
    try:
        with (
            open(OUTPUT / "trace-replicas.log", "w") as log,
            Suite(
                ports=ports,
                data_dir=tmp_path,
                echo=log,
                services=services,
                replicas=2,
                redis_url=redis.url,
                extra_env=environment,
            ) as suite,
        ):
            with httpx.Client(base_url=suite.url("load-balancer"), timeout=30) as lb:
                login = {"username": ADMIN[0], "password": ADMIN[1]}
                token = lb.post("/api/auth/login", json=login).json()["access_token"]
                trace_id = secrets.token_hex(16)
                # Token checks, not logins (each a password hash, throttled per user): blog-service is not started,
                # auth-service's verify is the route.
                for _ in range(4):
                    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
                    headers = {"traceparent": traceparent, "Authorization": f"Bearer {token}"}
                    answer = lb.get("/api/auth/verify", headers=headers)
                    assert answer.status_code == 200, answer.text
                    assert answer.headers["X-Trace-Id"] == trace_id
                tree = lb.get(f"/api/ops/traces/{trace_id}", headers={"Authorization": f"Bearer {token}"})
                assert tree.status_code == 200, tree.text
            spans = tree.json()["spans"]
            by_id = {span["span_id"]: span for span in spans}
            gateways = [s for s in spans if s["service"] == "api-gateway"]
            routes = [s for s in spans if s["service"] == "auth-service" and s["name"] == "GET /api/auth/verify"]
            # Every hop of every request found, whichever replica it ran on, each under its parent.
            assert len(gateways) == 4 and len(routes) == 4
            assert all(by_id[s["parent_id"]]["service"] == "load-balancer" for s in gateways)
            assert all(by_id[s["parent_id"]]["service"] == "api-gateway" for s in routes)
            balancer = [s for s in spans if s["service"] == "load-balancer"]
            assert {s["attributes"]["server.upstream.url"] for s in balancer} == {
                suite.url("api-gateway"),
                suite.url("api-gateway-2"),
            }
            assert {s["attributes"]["server.upstream.url"] for s in gateways} == {
                suite.url("auth-service"),
                suite.url("auth-service-2"),
            }
    finally:
        redis.stop()
