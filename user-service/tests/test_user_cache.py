"""The user reads' cache with three replicas on PostgreSQL and Redis: a change made through one replica shows at
once in the reads of every replica, a deleted user is gone everywhere, Redis going away sends reads to the database
(no error) and nothing kept before a change survives it, and a changed password still ends the old tokens."""

import contextlib

import pytest

from tests.support.polling import eventually
from tests.support.servers import serving
from user_service.main import create_app

pytestmark = pytest.mark.parametrize("database_target", ["postgresql"], indirect=True)

REPLICAS = 3


@contextlib.asynccontextmanager
async def replicas(identity, settings=None):
    """The identity's user-service and two more replicas of it (same database, Redis and revocation channel)."""
    settings = settings or identity.user_app.state.settings
    async with serving(create_app(settings)) as second, serving(create_app(settings)) as third:
        yield [identity.user_url, second, third]


async def _cache(client, url: str) -> dict:
    return (await client.get(f"{url}/stats")).json()["cache"]


async def _read(client, url: str, user_id: int, headers=None) -> dict | int:
    answer = await client.get(f"{url}/api/users/{user_id}", headers=headers)
    return answer.json() if answer.status_code == 200 else answer.status_code


async def _reads_are_kept(client, urls: list[str], user_id: int, headers=None) -> dict:
    """Reads `user_id` twice through every replica: the second read must come from its cache."""
    seen = [await _read(client, url, user_id, headers) for url in urls]
    before = [(await _cache(client, url))["hits"] for url in urls]
    assert [await _read(client, url, user_id, headers) for url in urls] == seen
    assert [(await _cache(client, url))["hits"] for url in urls] == [hits + 1 for hits in before]
    assert all(answer == seen[0] for answer in seen)
    return seen[0]


async def test_a_change_through_one_replica_shows_at_once_through_every_other(identity):
    client = identity.client
    user, auth = await identity.account("ruth")
    async with replicas(identity) as urls:
        assert {(await _cache(client, url))["backend"] for url in urls} == {"redis"}
        assert await _reads_are_kept(client, urls, user["id"]) == {
            k: v for k, v in user.items() if k not in ("email", "role")
        }
        assert (await _reads_are_kept(client, urls, user["id"], auth))["email"] == "ruth@example.com"

        for writer, email in zip(urls, ("ruth1@example.com", "ruth2@example.com", "ruth3@example.com"), strict=True):
            changed = await client.patch(f"{writer}/api/users/{user['id']}", json={"email": email}, headers=auth)
            assert changed.status_code == 200, changed.text
            # At once, on every replica, for both views (`updated_at` moved in the one anyone sees).
            for url in urls:
                assert (await _read(client, url, user["id"], auth))["email"] == email
                assert (await _read(client, url, user["id"]))["updated_at"] == changed.json()["updated_at"]
            assert (await _reads_are_kept(client, urls, user["id"], auth))["email"] == email

        assert (await client.delete(f"{urls[1]}/api/users/{user['id']}", headers=auth)).status_code == 204
        for url in urls:
            assert await _read(client, url, user["id"]) == 404
            assert await _read(client, url, user["id"], auth) in (401, 404)  # its token died with it


async def test_with_redis_gone_reads_go_to_the_database_and_nothing_stale_survives(identity, private_redis):
    client = identity.client
    user, auth = await identity.account("sara")
    settings = identity.user_app.state.settings.model_copy(update={"redis_url": private_redis.url})
    async with replicas(identity, settings) as all_urls:
        urls = all_urls[1:]  # the replicas on the private Redis (the first one's auth-service stays on the shared one)
        await _reads_are_kept(client, urls, user["id"], auth)

        private_redis.stop()
        for url in urls:
            assert (await _read(client, url, user["id"], auth))["email"] == "sara@example.com"
        path = f"/api/users/{user['id']}"
        changed = await client.patch(f"{urls[0]}{path}", json={"email": "down@example.com"}, headers=auth)
        assert changed.status_code == 200, changed.text
        for url in urls:
            assert (await _read(client, url, user["id"], auth))["email"] == "down@example.com"
            figures = (await client.get(f"{url}/stats")).json()
            assert figures["cache"]["status"] == "down" and figures["cache"]["bypassed"] >= 1
            assert figures["service_status"] == "degraded" and "Redis" in figures["cache"]["reason"]

        private_redis.start()  # empty: the version counters are gone and start again where nothing kept matches

        async def kept_again(url: str) -> bool:
            hits = (await _cache(client, url))["hits"]
            assert (await _read(client, url, user["id"], auth))["email"] == "down@example.com"
            figure = await _cache(client, url)
            return figure["status"] == "ok" and figure["hits"] > hits

        for url in urls:
            await eventually(lambda url=url: kept_again(url), timeout_s=30)
        changed = await client.patch(f"{urls[1]}{path}", json={"email": "back@example.com"}, headers=auth)
        assert changed.status_code == 200, changed.text
        for url in urls:
            assert (await _read(client, url, user["id"], auth))["email"] == "back@example.com"


async def test_a_new_password_ends_the_old_token_on_every_replica(identity):
    client = identity.client
    user, auth = await identity.account("tess")
    async with replicas(identity) as urls:
        for url in urls:  # each replica's verify cache now holds the token
            assert (await _read(client, url, user["id"], auth))["email"] == "tess@example.com"
        changed = await client.patch(
            f"{urls[2]}/api/users/{user['id']}", json={"password": "another-password-1"}, headers=auth
        )
        assert changed.status_code == 200, changed.text

        async def refused_everywhere() -> bool:
            answers = [await client.patch(f"{url}/api/users/{user['id']}", json={}, headers=auth) for url in urls]
            return all(answer.status_code == 401 for answer in answers)

        await eventually(refused_everywhere)
        for url in urls:
            assert await _read(client, url, user["id"], auth) == 401  # a token that is there must be valid
            assert "email" not in await _read(client, url, user["id"])
