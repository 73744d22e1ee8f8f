"""Fresh real databases and a private Redis key space for every test.

- `database_target`: parametrized over `sqlite` and `postgresql`; each test gets a new SQLite file in its tmp dir
  or a new schema in the PostgreSQL database `test` on 127.0.0.1:5432 (named after this run, dropped afterwards).
  `target.settings()` gives the `DatabaseSettings` fields (`database_url`, `database_schema`, `data_dir`).
- `redis_target`: the Redis on 127.0.0.1:6379 with a key prefix of its own; its keys are deleted afterwards.
- `private_redis`: a `redis-server` of the test's own on a free port, which the test may stop and start again (on
  the same port) to play "Redis went away"; the machine's shared Redis is never stopped or flushed.
"""

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis

from tests.support.servers import free_port
from titanium_dev.suite import ManagedProcess, start_redis_server

POSTGRES_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class DatabaseTarget:
    backend: str
    url: str
    schema: str
    data_dir: Path

    def settings(self) -> dict:
        return {"database_url": self.url, "database_schema": self.schema, "data_dir": self.data_dir}

    def env(self) -> dict[str, str]:
        """The same as environment variables, for a service started as a process."""
        return {"DATABASE_URL": self.url, "DATABASE_SCHEMA": self.schema, "DATA_DIR": str(self.data_dir)}


@dataclass(frozen=True)
class RedisTarget:
    url: str
    prefix: str


def postgres_admin(statement: str) -> None:
    """Run one statement (CREATE/DROP SCHEMA or DATABASE) on the test server, outside any event loop."""

    async def execute() -> None:
        connection = await asyncpg.connect(POSTGRES_DSN, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute())


def _postgres_url() -> str:
    return POSTGRES_DSN.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_target(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        yield DatabaseTarget("sqlite", f"sqlite+aiosqlite:///{path}", "", tmp_path)
        return
    schema = f"t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(POSTGRES_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_DSN} is needed for the data-layer tests: {exc}")
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield DatabaseTarget("postgresql", _postgres_url(), schema, tmp_path)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def redis_target():
    prefix = f"test:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except redis.RedisError as exc:
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} is needed for the cache tests: {exc}")
    try:
        yield RedisTarget(REDIS_URL, prefix)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


class PrivateRedis:
    """A memory-only redis-server on a fixed free port: `stop()` and `start()` again keep the URL."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is needed for this test (Debian package redis-server)")
        self.process = start_redis_server(server, self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture
def private_redis():
    server = PrivateRedis().start()
    yield server
    server.stop()
