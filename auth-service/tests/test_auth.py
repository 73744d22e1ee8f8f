import base64
import json
import time

import httpx
import pytest
from jose import jwt

from auth_service.main import create_app
from auth_service.settings import AuthSettings
from auth_service.throttle import LoginThrottle
from tests.support.servers import serving

SECRET = "x" * 48  # the secret tests/support/identity.py gives auth-service
ISSUER = "titanium-auth"


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"sub": "1", "username": "admin", "role": "admin", "iat": now, "exp": now + 600, "iss": ISSUER}
    return {k: v for k, v in (base | overrides).items() if v is not None}


async def verify(identity, token: str) -> httpx.Response:
    return await identity.client.get(
        f"{identity.auth_url}/api/auth/verify", headers={"Authorization": f"Bearer {token}"}
    )


async def test_login_then_verify(identity):
    user = await identity.register("alice")
    answer = await identity.client.post(
        f"{identity.auth_url}/api/auth/login", json={"username": "alice", "password": "password-123"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    verified = (await verify(identity, body["access_token"])).json()
    assert verified["valid"] is True
    assert (verified["sub"], verified["username"], verified["role"]) == (str(user["id"]), "alice", "user")
    assert verified["exp"] > time.time()


async def test_original_login_path(identity):
    await identity.register("bob")
    url = f"{identity.auth_url}/api/login"
    ok = (await identity.client.post(url, json={"username": "bob", "password": "password-123"})).json()
    assert ok["status"] == "success" and ok["token"] == ok["access_token"]
    failed = await identity.client.post(url, json={"username": "bob", "password": "wrong-one"})
    assert failed.status_code == 401
    assert failed.json()["status"] == "failed"
    assert failed.json()["message"] == failed.json()["detail"] == "invalid username or password"


async def test_wrong_password_and_unknown_user_look_the_same(identity):
    await identity.register("carol")
    url = f"{identity.auth_url}/api/auth/login"
    wrong = await identity.client.post(url, json={"username": "carol", "password": "nope-nope"})
    unknown = await identity.client.post(url, json={"username": "nobody", "password": "nope-nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


@pytest.mark.parametrize("body", [{}, {"username": "a"}, {"username": "", "password": "x"}, {"username": 1}])
async def test_bad_login_bodies_are_422(identity, body):
    assert (await identity.client.post(f"{identity.auth_url}/api/auth/login", json=body)).status_code == 422


ATTACKS = {
    "alg none": lambda: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
    "another algorithm": lambda: jwt.encode(claims(), SECRET, algorithm="HS512"),
    "wrong key": lambda: jwt.encode(claims(), "y" * 48, algorithm="HS256"),
    "tampered payload": lambda: ".".join(
        [
            jwt.encode(claims(), SECRET).split(".")[0],
            b64(claims(role="admin", sub="2")),
            jwt.encode(claims(), SECRET).split(".")[2],
        ]
    ),
    "expired": lambda: jwt.encode(claims(exp=int(time.time()) - 10, iat=int(time.time()) - 700), SECRET),
    "no exp": lambda: jwt.encode(claims(exp=None), SECRET),
    "no iat": lambda: jwt.encode(claims(iat=None), SECRET),
    "no iss": lambda: jwt.encode(claims(iss=None), SECRET),
    "foreign issuer": lambda: jwt.encode(claims(iss="evil"), SECRET),
    "garbage": lambda: "not-a-jwt",
}


@pytest.mark.parametrize("attack", ATTACKS)
async def test_forged_tokens_are_401(identity, attack):
    answer = await verify(identity, ATTACKS[attack]())
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["detail"]


async def test_a_well_formed_token_with_the_right_key_passes(identity):
    assert (await verify(identity, jwt.encode(claims(), SECRET))).status_code == 200


async def test_missing_or_malformed_authorization_is_401(identity):
    url = f"{identity.auth_url}/api/auth/verify"
    assert (await identity.client.get(url)).status_code == 401
    assert (await identity.client.get(url, headers={"Authorization": "Basic abc"})).status_code == 401


async def test_failed_logins_per_user_are_throttled(identity):
    await identity.register("dave")
    url = f"{identity.auth_url}/api/auth/login"
    for _ in range(5):
        answer = await identity.client.post(url, json={"username": "dave", "password": "wrong-pass"})
        assert answer.status_code == 401
    throttled = await identity.client.post(url, json={"username": "dave", "password": "password-123"})
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= 300
    other = await identity.client.post(
        url, json={"username": "nobody", "password": "x"}, headers={"X-Forwarded-For": "1.2.3.4"}
    )
    assert other.status_code == 401


async def test_failed_logins_per_address_are_throttled(identity):
    url = f"{identity.auth_url}/api/auth/login"
    spoof = {"X-Forwarded-For": "6.6.6.6, 10.0.0.9, 10.0.0.1"}  # the client forged the first entry
    for i in range(20):
        assert (
            await identity.client.post(url, json={"username": f"u{i}", "password": "x"}, headers=spoof)
        ).status_code == 401
    nine = {"X-Forwarded-For": "7.7.7.7, 10.0.0.9, 10.0.0.1"}
    assert (await identity.client.post(url, json={"username": "v", "password": "x"}, headers=nine)).status_code == 429
    elsewhere = {"X-Forwarded-For": "10.0.0.8, 10.0.0.1"}
    assert (
        await identity.client.post(url, json={"username": "v", "password": "x"}, headers=elsewhere)
    ).status_code == 401


async def test_throttle_counters_are_shared_through_redis(redis_target):
    replicas = [LoginThrottle(redis_target.url, redis_target.prefix, 2, 100, 60) for _ in range(2)]
    await replicas[0].record_failure("erin", "1.1.1.1")
    await replicas[1].record_failure("erin", "2.2.2.2")
    assert await replicas[0].retry_after("erin", "3.3.3.3") is not None
    await replicas[1].record_success("erin")
    assert await replicas[0].retry_after("erin", "3.3.3.3") is None
    for throttle in replicas:
        await throttle.close()


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:1/0"], ids=["absent", "down"])
async def test_throttle_works_in_memory_without_redis(redis_url):
    throttle = LoginThrottle(redis_url, "unused:", 2, 100, 60)
    await throttle.record_failure("frank", "1.1.1.1")
    assert await throttle.retry_after("frank", "1.1.1.1") is None
    await throttle.record_failure("frank", "1.1.1.1")
    assert 0 < await throttle.retry_after("frank", "1.1.1.1") <= 60
    await throttle.close()


async def test_user_service_down_is_503_naming_it():
    settings = AuthSettings(env="test", jwt_secret=SECRET, user_service_url="http://127.0.0.1:1")
    async with serving(create_app(settings)) as url, httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/api/auth/login", json={"username": "a", "password": "b"})
    assert answer.status_code == 503
    assert "user-service" in answer.json()["detail"]


def test_a_secret_is_required_outside_development():
    with pytest.raises(RuntimeError, match="JWT_SECRET is required"):
        create_app(AuthSettings(env="production", jwt_secret=""))
    with pytest.raises(RuntimeError, match="at least 32"):
        create_app(AuthSettings(env="production", jwt_secret="short"))
    assert create_app(AuthSettings(env="development", jwt_secret="")).state.tokens.secret
