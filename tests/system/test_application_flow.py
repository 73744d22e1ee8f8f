"""The application services as users meet them: everything through the load balancer of the real suite."""

import base64
import json
import uuid

import httpx
import pytest


@pytest.fixture
def lb(suite):
    with httpx.Client(base_url=suite.url("load-balancer"), timeout=10) as client:
        yield client


def register_and_login(lb: httpx.Client, *, original_paths: bool = False) -> tuple[int, str]:
    """A new user (through the original system's paths if asked); returns (id, bearer token)."""
    username = f"u{uuid.uuid4().hex[:10]}"
    account = {"username": username, "email": f"{username}@example.com", "password": "correct horse battery"}
    if original_paths:
        registered = lb.post("/api/register", json=account)
        assert registered.status_code == 201, registered.text
        assert registered.json()["status"] == "success"
        login = lb.post("/api/login", json={"username": username, "password": account["password"]})
        assert login.status_code == 200, login.text
        assert login.json()["status"] == "success"
        return registered.json()["id"], login.json()["token"]
    registered = lb.post("/api/users", json=account)
    assert registered.status_code == 201, registered.text
    login = lb.post("/api/auth/login", json={"username": username, "password": account["password"]})
    assert login.status_code == 200, login.text
    assert login.json()["token_type"] == "bearer"
    return registered.json()["id"], login.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_login_write_read_edit_forbid_delete(lb):
    _, alice = register_and_login(lb)
    _, bob = register_and_login(lb, original_paths=True)

    post = {"title": "<b>Hello</b>", "content": "first post " * 40}
    created = lb.post("/api/posts", json=post, headers=bearer(alice))
    assert created.status_code == 201, created.text
    post_id = created.json()["id"]

    read = lb.get(f"/api/posts/{post_id}")
    assert read.status_code == 200
    assert read.json()["title"] == "<b>Hello</b>"
    listed = lb.get("/api/posts", params={"offset": 0, "limit": 5}).json()
    assert listed[0]["id"] == post_id
    assert listed[0]["excerpt"].endswith("…")

    edited = lb.patch(f"/api/posts/{post_id}", json={"title": "Hello, edited"}, headers=bearer(alice))
    assert edited.status_code == 200
    assert lb.get(f"/api/posts/{post_id}").json()["title"] == "Hello, edited"

    assert lb.patch(f"/api/posts/{post_id}", json={"title": "mine now"}, headers=bearer(bob)).status_code == 403
    assert lb.delete(f"/api/posts/{post_id}", headers=bearer(bob)).status_code == 403
    assert lb.delete(f"/api/posts/{post_id}", headers=bearer(alice)).status_code == 204
    gone = lb.get(f"/api/posts/{post_id}")
    assert gone.status_code == 404
    assert gone.json()["detail"] == f"post {post_id} not found"


def test_bad_input_is_a_clear_4xx(lb):
    _, token = register_and_login(lb)
    assert lb.post("/api/posts", json={"title": "", "content": "x"}, headers=bearer(token)).status_code == 422
    assert lb.post("/api/posts", json={"title": 5}, headers=bearer(token)).status_code == 422
    assert lb.post("/api/posts", content=b"{not json", headers=bearer(token)).status_code == 422
    assert lb.post("/api/posts", json={"title": "t", "content": "c"}).status_code == 401
    assert lb.get("/api/posts/not-a-number").status_code == 422
    assert lb.post("/api/users", json={"username": "x"}).status_code == 422


def test_user_reads_hit_the_cache_and_writes_invalidate_it(lb, suite):
    user_id, token = register_and_login(lb)

    def cache() -> dict:
        return httpx.get(suite.url("user-service") + "/stats").json()["cache"]

    lb.get(f"/api/users/{user_id}")
    before = cache()
    lb.get(f"/api/users/{user_id}")
    after_hit = cache()
    assert after_hit["hits"] == before["hits"] + 1

    new_email = f"changed-{uuid.uuid4().hex[:6]}@example.com"
    assert lb.patch(f"/api/users/{user_id}", json={"email": new_email}, headers=bearer(token)).status_code == 200
    assert lb.get(f"/api/users/{user_id}", headers=bearer(token)).json()["email"] == new_email
    assert cache()["misses"] > after_hit["misses"]


def _forged(token: str, **claims) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def test_forged_tokens_are_refused_everywhere(lb):
    _, token = register_and_login(lb)
    tampered = _forged(token, role="admin")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    unsigned = f"{none_header}.{token.split('.')[1]}."
    for bad in (tampered, unsigned, token + "x"):
        assert lb.get("/api/auth/verify", headers=bearer(bad)).status_code == 401
        assert lb.post("/api/posts", json={"title": "t", "content": "c"}, headers=bearer(bad)).status_code == 401
    assert lb.get("/api/auth/verify", headers=bearer(token)).json()["valid"] is True


def test_repeated_failed_logins_are_throttled(lb):
    username = f"u{uuid.uuid4().hex[:10]}"
    lb.post("/api/users", json={"username": username, "email": f"{username}@example.com", "password": "right password"})
    statuses = [
        lb.post("/api/auth/login", json={"username": username, "password": "wrong password"}).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    throttled = lb.post("/api/auth/login", json={"username": username, "password": "right password"})
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
