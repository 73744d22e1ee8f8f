"""The suite's data layer: SQLAlchemy 2 async on SQLite (WAL, the embedded default) or PostgreSQL (asyncpg).

A service builds one `Database` from its settings (`DatabaseSettings` fields), calls `await db.start()` in its
lifespan (which applies its Alembic migrations, safely when replicas start together) and `await db.close()` on
shutdown. Writes go through `db.transaction()`, which turns unique-constraint violations into `ConflictError`;
`NotFoundError` is the one "no such row". Both are `ServiceError`s: a FastAPI app from the kit answers 409/404.
"""

import asyncio
import contextlib
import fcntl
import logging
import time
import weakref
import zlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from pydantic import Field
from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Mapped, mapped_column

from .clock import utcnow
from .errors import ServiceError
from .settings import ServiceSettings
from .tracing import instrument_engine, setup_tracing

log = logging.getLogger("titanium.db")

SQLITE_BUSY_TIMEOUT_MS = 5000


class Timestamped:
    """Declarative mixin: when a row was created and last changed, in UTC."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class DatabaseSettings(ServiceSettings):
    """Settings of a service with a database: `DATABASE_URL` wins, else a SQLite file under `DATA_DIR`."""

    database_url: str = Field(
        default="",
        description="The database (`postgresql://...` or `sqlite+aiosqlite:///...`); empty: a SQLite file under "
        "`DATA_DIR` (two replicas cannot share one).",
    )
    database_schema: str = Field(
        default="",
        description="A PostgreSQL schema to live in (tests give every run its own); empty: the server's default.",
    )
    data_dir: Path = Field(default=Path(".data"), description="Where the SQLite file is, without `DATABASE_URL`.")
    database_echo: bool = Field(default=False, description="true: every SQL statement is logged.")
    database_pool_size: int = Field(
        default=10, ge=1, description="Database connections kept open (as many again while busy)."
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.service_name}.db').resolve()}"


class NotFoundError(ServiceError, LookupError):
    """The row asked for does not exist (404)."""

    status_code = 404


class ConflictError(ServiceError, ValueError):
    """The write collides with an existing row, e.g. a unique constraint (409)."""

    status_code = 409


def _normalise_url(url: str) -> str:
    """Plain `postgresql://` and `sqlite://` URLs get their async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


# Execution option of the writers' engine: its transactions take SQLite's write lock when they begin.
SQLITE_WRITER = "titanium_sqlite_writer"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # The driver's own implicit BEGIN is off, so that _sqlite_begin decides how each transaction starts.
    dbapi_connection.isolation_level = None
    # WAL lets readers run beside the one writer; the busy timeout makes a second writer wait, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A write transaction that began DEFERRED reads, then fails to upgrade its lock when another writer got there
    # first; beginning IMMEDIATE makes concurrent writers queue (busy timeout) and each read what the last wrote.
    immediate = connection.get_execution_options().get(SQLITE_WRITER, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _upgrade_to_head(connection: Connection, script_location: str, version_table: str, schema: str | None) -> None:
    """Alembic's `upgrade head` on an open connection, without an env.py."""
    config = Config()
    config.set_main_option("script_location", script_location)
    script = ScriptDirectory.from_config(config)

    def steps(revision, _context):
        return script._upgrade_revs("head", revision)

    with EnvironmentContext(config, script, fn=steps, destination_rev="head") as environment:
        environment.configure(connection=connection, version_table=version_table, version_table_schema=schema)
        with environment.begin_transaction():
            environment.run_migrations()


# Alembic's runtime context is module-global: one migration run at a time per process (per event loop).
_migration_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


def _migration_lock() -> asyncio.Lock:
    return _migration_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


class _PerLoopLock:
    """An asyncio.Lock for each event loop that uses it (tests run one Database in several loops)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def __call__(self) -> asyncio.Lock:
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock between processes on this host (SQLite replicas sharing a file)."""
    handle = await asyncio.to_thread(open, path, "a+b")
    try:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing releases the lock


class Database:
    """One engine and session factory per service, plus migrations, readiness and the /stats figure."""

    def __init__(
        self,
        url: str,
        *,
        migrations: Path | str,
        name: str,
        schema: str | None = None,
        echo: bool = False,
        pool_size: int = 10,
    ) -> None:
        self.url = _normalise_url(url)
        self.migrations = str(migrations)
        self.name = name
        self.schema = schema or None
        self.backend = make_url(self.url).get_backend_name()
        self.engine: AsyncEngine = self._create_engine(echo, pool_size)
        instrument_engine(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        writer = self.engine.execution_options(**{SQLITE_WRITER: True}) if self.backend == "sqlite" else self.engine
        self._writer_sessions = async_sessionmaker(writer, expire_on_commit=False)
        # SQLite has one writer at a time. Writers of this process queue here, in turn, rather than in SQLite's
        # busy handler: that one sleeps and polls (up to 100 ms a step) on a pooled connection and its thread, and
        # under load let one writer wait seconds while later ones got in (504s at 30 creates/s).
        self._writer_turn = _PerLoopLock() if self.backend == "sqlite" else None

    @classmethod
    def from_settings(cls, settings: DatabaseSettings, *, migrations: Path | str) -> "Database":
        # The process's tracing first (a service builds its database before its app): its queries are spans.
        setup_tracing(settings)
        return cls(
            settings.resolved_database_url(),
            migrations=migrations,
            name=settings.service_name,
            schema=settings.database_schema,
            echo=settings.database_echo,
            pool_size=settings.database_pool_size,
        )

    def _create_engine(self, echo: bool, pool_size: int) -> AsyncEngine:
        if self.backend == "sqlite":
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # The pool as large as on PostgreSQL: with SQLAlchemy's default (5), every request beyond five at once
            # opened a connection (a thread, the file, four PRAGMAs) and closed it again.
            engine = create_async_engine(
                self.url, echo=echo, pool_size=pool_size, max_overflow=pool_size,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            )  # fmt: skip
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(engine.sync_engine, "begin", _sqlite_begin)
            return engine
        connect_args: dict[str, Any] = {"timeout": 5}
        if self.schema:
            connect_args["server_settings"] = {"search_path": self.schema}
        return create_async_engine(
            self.url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
            connect_args=connect_args,
        )  # fmt: skip

    @property
    def version_table(self) -> str:
        # One version table per service, so that services may share one PostgreSQL database.
        return "alembic_version_" + self.name.replace("-", "_")

    async def start(self) -> None:
        """Apply the migrations; replicas starting together take turns (a PostgreSQL advisory lock, or a lock file
        beside the SQLite database)."""
        async with _migration_lock(), contextlib.AsyncExitStack() as stack:
            database = make_url(self.url).database
            if self.backend == "sqlite" and database and database != ":memory:":
                await stack.enter_async_context(_file_lock(Path(database + ".migrate-lock")))
            await self._migrate()
        log.info("%s database ready (%s), migrations at head", self.name, self.backend)

    async def _migrate(self) -> None:
        async with self.engine.connect() as connection:
            if self.backend == "postgresql":
                lock_key = zlib.crc32(f"{self.schema or 'public'}:{self.version_table}".encode())
                await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
            await connection.run_sync(_upgrade_to_head, self.migrations, self.version_table, self.schema)
            await connection.commit()

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def transaction(self, conflict: str = "conflicts with an existing record") -> AsyncIterator[AsyncSession]:
        """A session that commits on success; a unique-constraint violation becomes `ConflictError(conflict)`."""
        async with contextlib.AsyncExitStack() as stack:
            if self._writer_turn is not None:
                await stack.enter_async_context(self._writer_turn())
            session = await stack.enter_async_context(self._writer_sessions())
            try:
                async with session.begin():
                    yield session
            except IntegrityError as exc:
                raise ConflictError(conflict) from exc

    async def ping(self) -> bool:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    def attach(self, kit) -> None:
        """Report this database in a service's /ready and /stats."""
        kit.add_readiness_check("db", self.ping)
        kit.add_stats_provider(self.stats)

    async def stats(self) -> dict[str, Any]:
        """The /stats `db` figure; a database that does not answer makes the service `degraded`."""
        started = time.perf_counter()
        try:
            await self.ping()
        except Exception as exc:  # any failure is the figure itself
            return {
                "db": {"status": "down", "backend": self.backend, "error": str(exc)[:200]},
                "service_status": "degraded",
            }
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return {"db": {"status": "ok", "backend": self.backend, "latency_ms": latency_ms}}
