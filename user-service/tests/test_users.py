import json

import httpx
import pytest
import redis.asyncio as redis

from tests.support.identity import ADMIN
from tests.support.servers import serving
from user_service.main import create_app


async def stats(identity) -> dict:
    return (await identity.client.get(f"{identity.user_url}/stats")).json()


async def test_register_read_and_list(identity):
    user, auth = await identity.account("alice")
    assert user["username"] == "alice" and user["role"] == "user"
    assert "password" not in json.dumps(user) and "argon2" not in json.dumps(user)
    answer = await identity.client.get(f"{identity.user_url}/api/users/{user['id']}")
    assert answer.status_code == 200
    assert answer.json()["username"] == "alice" and "email" not in answer.json() and "role" not in answer.json()
    listing = await identity.client.get(f"{identity.user_url}/api/users", params={"page": 1, "size": 1}, headers=auth)
    body = listing.json()
    assert body["total"] == 2  # the admin from ADMIN_USERNAME and alice
    assert len(body["items"]) == 1 and body["size"] == 1
    assert all("email" not in item for item in body["items"])


async def test_nobody_anonymous_enumerates_accounts_or_finds_the_admins(identity):
    alice, alice_auth = await identity.account("alice")
    admin_auth = {"Authorization": f"Bearer {await identity.token(*ADMIN)}"}
    url = f"{identity.user_url}/api/users"
    anonymous = await identity.client.get(url)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    # A signed-in user sees names, but the role and e-mail only of themself.
    seen = {item["username"]: item for item in (await identity.client.get(url, headers=alice_auth)).json()["items"]}
    assert set(seen) == {ADMIN[0], "alice"}
    assert "role" not in seen[ADMIN[0]] and "email" not in seen[ADMIN[0]]
    assert seen["alice"]["role"] == "user" and seen["alice"]["email"] == "alice@example.com"
    # One user by id, anonymously: no role either (the admin's id is no secret: 1).
    admin_id = seen[ADMIN[0]]["id"]
    assert "role" not in (await identity.client.get(f"{url}/{admin_id}")).json()
    assert "role" not in (await identity.client.get(f"{url}/{admin_id}", headers=alice_auth)).json()
    # An admin sees everyone's.
    everyone = (await identity.client.get(url, headers=admin_auth)).json()["items"]
    assert {item["username"]: item["role"] for item in everyone} == {ADMIN[0]: "admin", "alice": "user"}
    assert (await identity.client.get(f"{url}/{alice['id']}", headers=admin_auth)).json()["role"] == "user"


async def test_original_register_path_answers_status(identity):
    answer = await identity.client.post(
        f"{identity.user_url}/api/register", json={"username": "orig", "email": "o@example.com", "password": "p" * 8}
    )
    assert answer.status_code == 201
    assert answer.json()["status"] == "success"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "email": "a@example.com", "password": "password-1"},
        {"username": "bad name!", "email": "a@example.com", "password": "password-1"},
        {"username": "x" * 33, "email": "a@example.com", "password": "password-1"},
        {"username": "okname", "email": "not-an-email", "password": "password-1"},
        {"username": "okname", "email": "a@example.com", "password": "short"},
        {"username": "okname", "email": "a@example.com"},
        {"username": 5, "email": "a@example.com", "password": "password-1"},
        {"username": "okname", "email": "a@example.com", "password": "password-1", "role": "admin"},
    ],
)
async def test_bad_registrations_are_422(identity, body):
    answer = await identity.client.post(f"{identity.user_url}/api/users", json=body)
    assert answer.status_code == 422
    assert answer.json()["request_id"]


async def test_taken_username_or_email_is_409(identity):
    await identity.register("bob", email="bob@example.com")
    for body in (
        {"username": "bob", "email": "other@example.com", "password": "password-1"},
        {"username": "bob2", "email": "BOB@example.com", "password": "password-1"},
    ):
        answer = await identity.client.post(f"{identity.user_url}/api/users", json=body)
        assert answer.status_code == 409
        assert answer.json()["detail"] == "username or email already registered"


async def test_unknown_user_is_404(identity):
    assert (await identity.client.get(f"{identity.user_url}/api/users/999999")).status_code == 404
    assert (await identity.client.get(f"{identity.user_url}/api/users/abc")).status_code == 422


async def test_only_self_or_admin_may_change_or_delete(identity):
    carol, carol_auth = await identity.account("carol")
    _, dave_auth = await identity.account("dave")
    admin_auth = {"Authorization": f"Bearer {await identity.token(*ADMIN)}"}
    url = f"{identity.user_url}/api/users/{carol['id']}"

    assert (await identity.client.patch(url, json={"email": "c2@example.com"})).status_code == 401
    assert (await identity.client.patch(url, json={"email": "c2@example.com"}, headers=dave_auth)).status_code == 403
    assert (await identity.client.patch(url, json={"role": "admin"}, headers=carol_auth)).status_code == 403
    assert (await identity.client.patch(url, json={}, headers=carol_auth)).status_code == 422
    bad_token = {"Authorization": "Bearer not.a.token"}
    assert (await identity.client.patch(url, json={"email": "c@x.io"}, headers=bad_token)).status_code == 401

    changed = await identity.client.patch(url, json={"email": "c2@example.com"}, headers=carol_auth)
    assert changed.status_code == 200 and changed.json()["email"] == "c2@example.com"
    assert (await identity.client.get(url, headers=carol_auth)).json()["email"] == "c2@example.com"
    assert (await identity.client.get(url, headers=admin_auth)).json()["email"] == "c2@example.com"
    assert "email" not in (await identity.client.get(url, headers=dave_auth)).json()
    promoted = await identity.client.patch(url, json={"role": "admin"}, headers=admin_auth)
    assert promoted.json()["role"] == "admin"
    # A role change ends the tokens issued before it: carol logs in again.
    assert (await identity.client.delete(url, headers=carol_auth)).status_code == 401
    carol_auth = {"Authorization": f"Bearer {await identity.token('carol')}"}

    assert (await identity.client.delete(url, headers=dave_auth)).status_code == 403
    assert (await identity.client.delete(url, headers=carol_auth)).status_code == 204
    assert (await identity.client.get(url)).status_code == 404
    assert (await identity.client.delete(url, headers=admin_auth)).status_code == 404


async def test_changed_password_is_the_one_that_works(identity):
    erin, erin_auth = await identity.account("erin")
    url = f"{identity.user_url}/api/users/{erin['id']}"
    assert (await identity.client.patch(url, json={"password": "new-password-9"}, headers=erin_auth)).status_code == 200
    check = f"{identity.user_url}/internal/credentials/verify"
    old = await identity.client.post(check, json={"username": "erin", "password": "password-123"})
    new = await identity.client.post(check, json={"username": "erin", "password": "new-password-9"})
    assert old.status_code == 401
    assert new.status_code == 200
    assert new.json() == {"valid": True, "id": erin["id"], "username": "erin", "role": "user", "token_version": 1}


async def test_credentials_check_refuses_unknown_users_and_wrong_passwords(identity):
    await identity.register("frank")
    check = f"{identity.user_url}/internal/credentials/verify"
    for body in ({"username": "frank", "password": "wrong-password"}, {"username": "nobody", "password": "x"}):
        answer = await identity.client.post(check, json=body)
        assert answer.status_code == 401
        assert answer.json()["detail"] == "invalid username or password"


async def test_cache_hit_then_a_change_and_no_stale_read(identity, redis_target, database_target):
    grace, grace_auth = await identity.account("grace")
    url = f"{identity.user_url}/api/users/{grace['id']}"
    before = (await stats(identity))["cache"]
    first = await identity.client.get(url)
    second = await identity.client.get(url)
    assert first.content == second.content and first.headers["content-type"] == "application/json"
    assert first.json() == {k: v for k, v in grace.items() if k not in ("email", "role")}
    after = (await stats(identity))["cache"]
    assert after["misses"] == before["misses"] + 1
    assert after["hits"] == before["hits"] + 1
    assert after["backend"] == ("local" if database_target.backend == "sqlite" else "redis")
    assert after["status"] == "ok" and 0 < after["hit_ratio"] <= 1

    # The user themself sees their e-mail and role (an answer kept apart from the one anyone sees).
    assert (await identity.client.get(url, headers=grace_auth)).json() == grace
    assert (await identity.client.get(url)).json() == first.json()

    # Answers are kept in the process: Redis holds at most a version counter, never a user.
    client = redis.Redis.from_url(redis_target.url)
    keys = [key async for key in client.scan_iter(match=f"{redis_target.prefix}users:*")]
    values = [await client.get(key) for key in keys if await client.type(key) == b"string"]
    await client.aclose()
    assert not any(b"grace" in value or b"argon2" in value for value in values)

    await identity.client.patch(url, json={"email": "grace2@example.com"}, headers=grace_auth)
    assert (await identity.client.get(url, headers=grace_auth)).json()["email"] == "grace2@example.com"
    assert (await stats(identity))["cache"]["misses"] == after["misses"] + 2


async def test_first_admin_comes_from_the_environment(identity):
    check = f"{identity.user_url}/internal/credentials/verify"
    answer = await identity.client.post(check, json={"username": ADMIN[0], "password": ADMIN[1]})
    assert answer.json()["role"] == "admin"


async def test_stats_report_users_and_database(identity):
    await identity.register("henry")
    figures = await stats(identity)
    assert figures["users"] == 2
    assert figures["db"]["status"] == "ok"
    assert figures["service_status"] == "online"


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:1/0"], ids=["absent", "down"])
async def test_without_redis_everything_works_and_stats_say_why(identity_settings, redis_url):
    settings = identity_settings[0].model_copy(update={"redis_url": redis_url})
    async with serving(create_app(settings)) as url, httpx.AsyncClient() as client:
        body = {"username": "ivy", "email": "ivy@example.com", "password": "password-1"}
        created = (await client.post(f"{url}/api/users", json=body)).json()
        assert (await client.get(f"{url}/api/users/{created['id']}")).json()["username"] == "ivy"
        assert (await client.get(f"{url}/ready")).status_code == 200
        figures = (await client.get(f"{url}/stats")).json()
    assert figures["users"] == 2
    if settings.database_url.startswith("sqlite"):  # the cache is this process's own: Redis is not needed for it
        assert figures["cache"]["backend"] == "local" and figures["cache"]["status"] == "ok"
        return
    assert figures["service_status"] == "degraded"
    assert figures["cache"]["status"] == ("off" if not redis_url else "down")
    assert ("REDIS_URL is not set" if not redis_url else "Redis read failed") in figures["cache"]["reason"]
    assert figures["degraded_reasons"] == [figures["cache"]["reason"]]


async def test_auth_service_down_hides_emails_on_reads_and_refuses_writes(identity_settings):
    settings = identity_settings[0].model_copy(update={"auth_service_url": "http://127.0.0.1:1"})
    token = {"Authorization": "Bearer some.token.value"}
    async with serving(create_app(settings)) as url, httpx.AsyncClient() as client:
        body = {"username": "jack", "email": "jack@example.com", "password": "password-1"}
        created = (await client.post(f"{url}/api/users", json=body)).json()
        read = await client.get(f"{url}/api/users/{created['id']}", headers=token)
        write = await client.patch(f"{url}/api/users/{created['id']}", json={"email": "j@example.com"}, headers=token)
    assert read.status_code == 200 and "email" not in read.json()
    assert write.status_code == 503
    assert "auth-service" in write.json()["detail"]
