import asyncio

import httpx
import pytest

from blog_service.main import create_app
from tests.support.identity import ADMIN
from tests.support.polling import eventually
from tests.support.servers import serving


@pytest.fixture
async def blog(blog_settings):
    async with serving(create_app(blog_settings)) as url:
        yield url


async def publish(identity, blog, headers, title="Hello", content="World") -> httpx.Response:
    return await identity.client.post(f"{blog}/api/posts", json={"title": title, "content": content}, headers=headers)


async def test_create_read_edit_delete_with_ownership(identity, blog):
    alice, alice_auth = await identity.account("alice")
    _, bob_auth = await identity.account("bob")
    admin_auth = {"Authorization": f"Bearer {await identity.token(*ADMIN)}"}

    created = await publish(identity, blog, alice_auth, "First post", "Some content")
    assert created.status_code == 201
    post = created.json()
    assert (post["author"], post["author_id"], post["title"]) == ("alice", alice["id"], "First post")
    url = f"{blog}/api/posts/{post['id']}"
    assert (await identity.client.get(url)).json()["content"] == "Some content"

    edited = await identity.client.patch(url, json={"title": "Edited"}, headers=alice_auth)
    assert edited.status_code == 200 and edited.json()["title"] == "Edited"
    assert (await identity.client.get(url)).json()["title"] == "Edited"
    assert (await identity.client.patch(url, json={"title": "Mine"}, headers=bob_auth)).status_code == 403
    assert (await identity.client.delete(url, headers=bob_auth)).status_code == 403
    assert (await identity.client.patch(url, json={"content": "by admin"}, headers=admin_auth)).status_code == 200
    assert (await identity.client.delete(url, headers=alice_auth)).status_code == 204
    assert (await identity.client.get(url)).status_code == 404
    assert (await identity.client.delete(url, headers=alice_auth)).status_code == 404


async def test_writes_need_a_valid_token(identity, blog):
    assert (await publish(identity, blog, {})).status_code == 401
    forged = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}
    answer = await publish(identity, blog, forged)
    assert answer.status_code == 401 and answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"title": "", "content": "x"},
        {"title": "   ", "content": "x"},
        {"title": "t" * 121, "content": "x"},
        {"title": "ok", "content": ""},
        {"title": "ok", "content": "c" * 20_001},
        {"title": "ok"},
        {"title": ["list"], "content": "x"},
        {"title": "ok", "content": "x", "author": "someone-else"},
    ],
)
async def test_bad_posts_are_422(identity, blog, body):
    _, auth = await identity.account("carol")
    answer = await identity.client.post(f"{blog}/api/posts", json=body, headers=auth)
    assert answer.status_code == 422
    assert answer.json()["request_id"]


async def test_limits_are_inclusive(identity, blog):
    _, auth = await identity.account("dave")
    assert (await publish(identity, blog, auth, "t" * 120, "c" * 20_000)).status_code == 201


async def test_pages_newest_first_and_the_original_offset_limit(identity, blog):
    _, auth = await identity.account("erin")
    for i in range(5):
        await publish(identity, blog, auth, f"post {i}", f"content {i} " + "word " * 100)
    first = (await identity.client.get(f"{blog}/api/posts", params={"page": 1, "size": 2})).json()
    assert [p["title"] for p in first["items"]] == ["post 4", "post 3"]
    assert (first["total"], first["pages"], first["size"]) == (5, 3, 2)
    last = (await identity.client.get(f"{blog}/api/posts", params={"page": 3, "size": 2})).json()
    assert [p["title"] for p in last["items"]] == ["post 0"]
    assert "content" not in last["items"][0]
    assert last["items"][0]["excerpt"].startswith("content 0") and last["items"][0]["excerpt"].endswith("…")
    assert len(last["items"][0]["excerpt"]) <= 201
    capped = (await identity.client.get(f"{blog}/api/posts", params={"size": 1000})).json()
    assert capped["size"] == 50
    original = (await identity.client.get(f"{blog}/api/posts", params={"offset": 1, "limit": 2})).json()
    assert [p["title"] for p in original] == ["post 3", "post 2"]
    assert set(original[0]) >= {"id", "title", "author", "created_at", "excerpt"}
    for bad in ({"page": 0}, {"size": 0}, {"offset": -1}, {"page": "x"}):
        assert (await identity.client.get(f"{blog}/api/posts", params=bad)).status_code == 422


async def test_no_parameters_answer_the_original_bare_list_newest_first(identity, blog):
    _, auth = await identity.account("bare")
    assert (await identity.client.get(f"{blog}/api/posts")).json() == []
    for i in range(23):
        await publish(identity, blog, auth, f"bare {i}")
    listing = (await identity.client.get(f"{blog}/api/posts")).json()
    assert isinstance(listing, list)
    assert [p["title"] for p in listing] == [f"bare {i}" for i in range(22, 2, -1)]
    assert set(listing[0]) >= {"id", "title", "author", "created_at", "excerpt"}
    assert (await identity.client.get(f"{blog}/api/posts", params={"limit": 3})).json() == listing[:3]
    # Either page parameter alone still answers the page object.
    assert (await identity.client.get(f"{blog}/api/posts", params={"size": 5})).json()["total"] == 23
    assert [
        p["title"] for p in (await identity.client.get(f"{blog}/api/posts", params={"page": 3})).json()["items"]
    ] == [
        "bare 2",
        "bare 1",
        "bare 0",
    ]


async def test_unknown_posts(identity, blog):
    assert (await identity.client.get(f"{blog}/api/posts/424242")).status_code == 404
    assert (await identity.client.get(f"{blog}/api/posts/abc")).status_code == 422


async def test_stats_count_real_posts(identity, blog):
    _, auth = await identity.account("frank")
    for _ in range(2):
        published = await publish(identity, blog, auth)
        assert published.status_code == 201, published.text
    stats = (await identity.client.get(f"{blog}/stats")).json()
    assert stats["posts"] == stats["post_count"] == 2
    assert stats["db"]["status"] == "ok"


async def test_token_checks_are_cached_briefly(identity, blog_settings):
    _, auth = await identity.account("gina")
    kit = identity.auth_app.state.kit
    app = create_app(blog_settings)
    async with serving(app) as blog:
        # Answers are kept beyond a second only once the revocation feed is subscribed, and subscribing forgets
        # everything cached before it: both happen in the background after start-up.
        await eventually(lambda: app.state.verifier.feed.listening)
        await publish(identity, blog, auth)
        checked = kit.total
        await publish(identity, blog, auth)
        await publish(identity, blog, auth)
        assert kit.total == checked


async def test_auth_service_down_reads_work_writes_503(identity, blog_settings):
    _, auth = await identity.account("hank")
    settings = blog_settings.model_copy(update={"auth_service_url": "http://127.0.0.1:1"})
    async with serving(create_app(settings)) as blog:
        assert (await identity.client.get(f"{blog}/api/posts")).status_code == 200
        answer = await publish(identity, blog, auth)
        assert answer.status_code == 503
        assert "auth-service" in answer.json()["detail"]
        assert (await identity.client.get(f"{blog}/ready")).status_code == 200


async def test_spa_is_served(identity, blog):
    page = await identity.client.get(f"{blog}/blog/")
    assert page.status_code == 200 and '<main id="view"' in page.text
    script = await identity.client.get(f"{blog}/blog/app.js")
    assert script.status_code == 200
    assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text


async def test_a_cached_token_check_ends_when_the_user_is_revoked(identity, blog):
    user, auth = await identity.account("ivan")
    await publish(identity, blog, auth)  # the check is cached now
    url = f"{identity.user_url}/api/users/{user['id']}"
    assert (await identity.client.patch(url, json={"password": "fresh-password-2"}, headers=auth)).status_code == 200
    deadline = asyncio.get_running_loop().time() + 1.0
    while (status := (await publish(identity, blog, auth)).status_code) != 401:
        assert status == 201 and asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


async def test_post_ids_are_never_reused(identity, blog):
    _, auth = await identity.account("jill")
    first = (await publish(identity, blog, auth)).json()["id"]
    assert (await identity.client.delete(f"{blog}/api/posts/{first}", headers=auth)).status_code == 204
    assert (await publish(identity, blog, auth)).json()["id"] > first
