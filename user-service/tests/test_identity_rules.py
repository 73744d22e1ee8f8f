"""Names unique whatever their case, ids never reused, and password checks that refuse at once when busy."""

import asyncio

import pytest
from sqlalchemy import text

from titanium_common.db import Database
from user_service.main import MIGRATIONS
from user_service.passwords import Passwords, PasswordsBusy
from user_service.settings import UserSettings


async def test_a_name_differing_only_in_case_is_taken(identity):
    await identity.register("alice")
    answer = await identity.client.post(
        f"{identity.user_url}/api/users",
        json={"username": "ALICE", "email": "other@example.com", "password": "password-123"},
    )
    assert answer.status_code == 409
    # Logging in does not care about case either.
    assert await identity.token("Alice")


async def test_a_deleted_users_id_is_not_given_to_the_next(identity):
    first, auth = await identity.account("first")
    assert (
        await identity.client.delete(f"{identity.user_url}/api/users/{first['id']}", headers=auth)
    ).status_code == 204
    assert (await identity.register("second"))["id"] > first["id"]


async def _database_at_first_revision(database_target, *names: str) -> Database:
    """The users table as the first migration made it, holding `names`."""
    db = Database.from_settings(UserSettings(env="test", **database_target.settings()), migrations=MIGRATIONS)
    async with db.engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(32) NOT NULL UNIQUE, "
                "email VARCHAR(254) NOT NULL UNIQUE, password_hash VARCHAR(255) NOT NULL, "
                "role VARCHAR(16) NOT NULL DEFAULT 'user', created_at TIMESTAMP NOT NULL, "
                "updated_at TIMESTAMP NOT NULL)"
            )
        )
        await connection.execute(
            text("CREATE TABLE alembic_version_user_service (version_num VARCHAR(32) PRIMARY KEY)")
        )
        await connection.execute(text("INSERT INTO alembic_version_user_service VALUES ('0001')"))
        for number, name in enumerate(names, start=1):
            await connection.execute(
                text(
                    "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) "
                    "VALUES (:id, :name, :email, 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": number, "name": name, "email": f"{number}@example.com"},
            )
    return db


async def test_the_upgrade_names_existing_clashes_and_stops(database_target):
    db = await _database_at_first_revision(database_target, "alice", "bob", "ALICE", "Alice")
    with pytest.raises(RuntimeError, match=r"alice \(id 1\), ALICE \(id 3\), Alice \(id 4\)"):
        await db.start()
    await db.close()


async def test_the_upgrade_keeps_users_and_adds_a_token_version(database_target):
    db = await _database_at_first_revision(database_target, "alice", "bob")
    await db.start()
    async with db.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, username, token_version FROM users ORDER BY id"))).all()
    assert [tuple(row) for row in rows] == [(1, "alice", 0), (2, "bob", 0)]
    await db.close()


async def test_a_check_that_would_finish_past_its_budget_is_refused_at_once():
    passwords = Passwords(time_cost=1, memory_kib=8 * 1024, parallelism=1, workers=1)
    stored = passwords.hasher.hash("password-123")
    passwords.estimate_s = 1.0  # as if each check took a second: two fit in a 2.5 s budget, a third would not
    answers = await asyncio.gather(
        *(passwords.verify(stored, "password-123", budget_s=2.5) for _ in range(10)), return_exceptions=True
    )
    refused = [a for a in answers if isinstance(a, PasswordsBusy)]
    assert answers[:2] == [True, True]
    assert len(refused) == 8
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    passwords.close()


@pytest.fixture
def busy_passwords(identity_settings):
    user, auth = identity_settings
    user.credentials_check_budget_s = 0.000_001  # every check would take longer
    return user, auth


async def test_a_busy_password_check_is_503_with_retry_after_through_auth_service(busy_passwords, identity):
    await identity.user_app.state.store.create("kate", "kate@example.com", "password-123")
    check = await identity.client.post(
        f"{identity.user_url}/internal/credentials/verify", json={"username": "kate", "password": "password-123"}
    )
    assert check.status_code == 503 and int(check.headers["Retry-After"]) >= 1
    login = await identity.client.post(
        f"{identity.auth_url}/api/auth/login", json={"username": "kate", "password": "password-123"}
    )
    assert login.status_code == 503
    assert int(login.headers["Retry-After"]) >= 1
    assert "user-service" in login.json()["detail"]
