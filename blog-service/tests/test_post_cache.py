"""The post reads' cache: a write shows at once in every read, through the replica that made it or any other,
with Redis or without it (then reads go to the database), and the reads it keeps are really served from it."""

import asyncio

import pytest

from blog_service.main import create_app
from tests.support.servers import serving

POLL_TIMEOUT_S = 30.0


async def _titles(client, url: str) -> list[str]:
    answer = await client.get(url)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return [post["title"] for post in (body["items"] if isinstance(body, dict) else body)]


async def _cache_figure(client, url: str) -> dict:
    return (await client.get(f"{url}/stats")).json()["cache"]


async def _publish(client, url: str, auth: dict, title: str) -> dict:
    answer = await client.post(f"{url}/api/posts", json={"title": title, "content": f"{title} text"}, headers=auth)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _each_write_shows_at_once(identity, writer: str, reader: str) -> None:
    """Writes through `writer`; every read through `reader` (kept by its cache) must show each one at once."""
    client = identity.client
    _, auth = await identity.account("writer")
    newest, page = f"{reader}/api/posts?offset=0&limit=10", f"{reader}/api/posts?page=1&size=10"
    assert await _titles(client, newest) == []
    first = await _publish(client, writer, auth, "first")
    detail = f"{reader}/api/posts/{first['id']}"
    assert await _titles(client, newest) == ["first"]
    assert await _titles(client, page) == ["first"]
    assert (await client.get(detail)).json()["title"] == "first"

    # The same reads again are answered from the cache.
    before = await _cache_figure(client, reader)
    for url in (newest, page, detail):
        assert (await client.get(url)).status_code == 200
    assert (await _cache_figure(client, reader))["hits"] - before["hits"] == 3

    second = await _publish(client, writer, auth, "second")
    assert await _titles(client, newest) == ["second", "first"]
    assert (await client.get(page)).json()["total"] == 2
    # A post that does not exist yet answers 404, and that answer is not kept: ids are given in order.
    upcoming = f"{reader}/api/posts/{second['id'] + 1}"
    assert (await client.get(upcoming)).status_code == 404
    third = await _publish(client, writer, auth, "third")
    assert third["id"] == second["id"] + 1
    assert (await client.get(upcoming)).json()["title"] == "third"

    edited = await client.patch(f"{writer}/api/posts/{first['id']}", json={"title": "first, edited"}, headers=auth)
    assert edited.status_code == 200
    assert (await client.get(detail)).json()["title"] == "first, edited"
    assert await _titles(client, newest) == ["third", "second", "first, edited"]

    assert (await client.delete(f"{writer}/api/posts/{first['id']}", headers=auth)).status_code == 204
    assert (await client.get(detail)).status_code == 404
    assert await _titles(client, newest) == ["third", "second"]
    assert await _titles(client, f"{writer}/api/posts?offset=0&limit=10") == ["third", "second"]


@pytest.mark.parametrize("database_target", ["sqlite"], indirect=True)
async def test_on_sqlite_the_cache_is_local_and_each_write_shows_at_once(identity, blog_settings):
    async with serving(create_app(blog_settings)) as blog:
        assert (await _cache_figure(identity.client, blog))["backend"] == "local"
        await _each_write_shows_at_once(identity, blog, blog)


@pytest.mark.parametrize("database_target", ["postgresql"], indirect=True)
async def test_what_one_replica_writes_another_reads_at_once(identity, blog_settings):
    async with serving(create_app(blog_settings)) as one, serving(create_app(blog_settings)) as other:
        assert (await _cache_figure(identity.client, other))["backend"] == "redis"
        await _each_write_shows_at_once(identity, one, other)


@pytest.mark.parametrize("database_target", ["postgresql"], indirect=True)
async def test_with_redis_gone_reads_go_to_the_database_and_come_back_when_it_does(
    identity, blog_settings, private_redis
):
    settings = blog_settings.model_copy(update={"redis_url": private_redis.url})
    client = identity.client
    _, auth = await identity.account("writer")
    async with serving(create_app(settings)) as one, serving(create_app(settings)) as other:
        newest = f"{other}/api/posts?offset=0&limit=10"
        await _publish(client, one, auth, "before")
        assert await _titles(client, newest) == ["before"]
        assert await _titles(client, newest) == ["before"]
        assert (await _cache_figure(client, other))["hits"] >= 1

        private_redis.stop()
        assert await _titles(client, newest) == ["before"]
        await _publish(client, one, auth, "while Redis is down")
        assert await _titles(client, newest) == ["while Redis is down", "before"]
        figure = await _cache_figure(client, other)
        assert figure["status"] == "down" and figure["bypassed"] >= 2 and "Redis" in figure["reason"]

        private_redis.start()  # empty: the counters are gone, and start again where nothing kept matches
        async with asyncio.timeout(POLL_TIMEOUT_S):
            while True:
                hits = (await _cache_figure(client, other))["hits"]
                assert await _titles(client, newest) == ["while Redis is down", "before"]
                figure = await _cache_figure(client, other)
                if figure["status"] == "ok" and figure["hits"] > hits:
                    break
                await asyncio.sleep(0.2)
        await _publish(client, one, auth, "after")
        assert await _titles(client, newest) == ["after", "while Redis is down", "before"]
