import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import text

from titanium_common.db import ConflictError, Database, DatabaseSettings, NotFoundError
from titanium_common.fastapi_app import create_fastapi_app

MIGRATIONS = Path(__file__).parent / "db_migrations"


def make_db(target, name="db-test") -> Database:
    return Database(target.url, migrations=MIGRATIONS, name=name, schema=target.schema)


async def test_migrations_apply_once_and_are_idempotent(database_target):
    db = make_db(database_target)
    await db.start()
    await db.start()
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO items (name) VALUES ('a')"))
    async with db.sessions() as session:
        versions = (await session.execute(text("SELECT version_num FROM alembic_version_db_test"))).all()
    assert versions == [("0001",)]
    await db.close()


async def test_replicas_starting_together_both_succeed(database_target):
    replicas = [make_db(database_target) for _ in range(3)]
    await asyncio.gather(*(db.start() for db in replicas))
    async with replicas[0].sessions() as session:
        assert (await session.execute(text("SELECT count(*) FROM alembic_version_db_test"))).scalar() == 1
    for db in replicas:
        await db.close()


async def test_unique_violation_becomes_conflict(database_target):
    db = make_db(database_target)
    await db.start()
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO items (name) VALUES ('dup')"))
    with pytest.raises(ConflictError, match="name taken"):
        async with db.transaction("name taken") as session:
            await session.execute(text("INSERT INTO items (name) VALUES ('dup')"))
    await db.close()


async def test_stats_and_readiness(database_target):
    db = make_db(database_target)
    await db.start()
    assert await db.ping()
    figure = (await db.stats())["db"]
    assert figure["status"] == "ok"
    assert figure["backend"] == database_target.backend
    assert figure["latency_ms"] >= 0
    await db.close()


async def test_a_database_that_does_not_answer_degrades_stats():
    db = Database("postgresql://nobody@127.0.0.1:1/none", migrations=MIGRATIONS, name="gone")
    stats = await db.stats()
    assert stats["service_status"] == "degraded"
    assert stats["db"]["status"] == "down"
    await db.close()


def test_sqlite_file_lives_under_data_dir(tmp_path):
    settings = DatabaseSettings(service_name="svc", data_dir=tmp_path)
    assert settings.resolved_database_url() == f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}"
    assert DatabaseSettings(database_url="postgresql://x@h/d").resolved_database_url() == "postgresql://x@h/d"


async def test_sqlite_runs_in_wal_mode(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}", migrations=MIGRATIONS, name="wal")
    await db.start()
    async with db.sessions() as session:
        assert (await session.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await session.execute(text("PRAGMA busy_timeout"))).scalar() > 0
    await db.close()


async def test_http_mapping_of_missing_and_conflicting_rows():
    router = APIRouter()

    @router.get("/missing")
    async def missing():
        raise NotFoundError("item 7 not found")

    @router.get("/conflict")
    async def conflict():
        raise ConflictError("name taken")

    app = create_fastapi_app(DatabaseSettings(service_name="svc"), title="svc", routers=[router])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        missing_answer = await client.get("/missing")
        conflict_answer = await client.get("/conflict")
    assert missing_answer.status_code == 404
    assert missing_answer.json()["detail"] == "item 7 not found"
    assert conflict_answer.status_code == 409
    assert conflict_answer.json()["detail"] == "name taken"
    assert conflict_answer.json()["request_id"]


async def test_sqlite_writers_queue_and_each_reads_what_the_last_wrote(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}", migrations=MIGRATIONS, name="db-test")
    await db.start()

    async def add_next() -> None:
        async with db.transaction() as session:
            count = (await session.execute(text("SELECT count(*) FROM items"))).scalar()
            await asyncio.sleep(0.01)  # the other writers try to get in between the read and the write
            await session.execute(text("INSERT INTO items (name) VALUES (:name)"), {"name": f"item-{count}"})

    await asyncio.gather(*(add_next() for _ in range(12)))
    async with db.sessions() as session:
        names = set((await session.execute(text("SELECT name FROM items"))).scalars())
    assert names == {f"item-{n}" for n in range(12)}
    await db.close()


async def test_sqlite_writers_of_one_process_wait_their_turn_without_a_connection(tmp_path):
    """While one write transaction is open, the other writers hold no pooled connection (nor its thread) polling
    SQLite's lock: they wait in the event loop, and each gets in as soon as the one before commits."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}", migrations=MIGRATIONS, name="db-test")
    await db.start()
    checked_out: list[int] = []

    async def write(n: int) -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO items (name) VALUES (:name)"), {"name": f"item-{n}"})
            await asyncio.sleep(0.01)
            checked_out.append(db.engine.pool.checkedout())

    try:
        await asyncio.gather(*(write(n) for n in range(12)))
        assert checked_out == [1] * 12
        async with db.sessions() as session:
            assert (await session.execute(text("SELECT count(*) FROM items"))).scalar() == 12
    finally:
        await db.close()


async def test_a_busy_pool_keeps_as_many_connections_as_asked_for(database_target):
    """Twelve sessions at once on a pool of eight: afterwards eight stay open to be reused, none is opened per
    request (the default of five closed every connection beyond the fifth when it was returned)."""
    db = Database(database_target.url, migrations=MIGRATIONS, name="db-test", schema=database_target.schema,
                  pool_size=8)  # fmt: skip
    await db.start()
    try:
        started = asyncio.Event()

        async def read() -> None:
            async with db.sessions() as session:
                await session.execute(text("SELECT 1"))
                await started.wait()

        readers = [asyncio.create_task(read()) for _ in range(12)]
        await asyncio.sleep(0.2)
        started.set()
        await asyncio.gather(*readers)
        assert db.engine.pool.checkedin() == 8
    finally:
        await db.close()
