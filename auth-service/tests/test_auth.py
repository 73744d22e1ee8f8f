import asyncio
import base64
import json
import time

import httpx
import pytest
from fastapi import FastAPI
from jose import jwt

from auth_service.main import create_app
from auth_service.settings import AuthSettings
from tests.support.servers import serving

SECRET = "x" * 48  # the secret tests/support/identity.py gives auth-service
ISSUER = "titanium-auth"


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {"sub": "1", "username": "admin", "role": "admin", "ver": 0, "iat": now, "exp": now + 600, "iss": ISSUER}
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
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert body["refresh_token"] and body["refresh_expires_in"] == 14 * 24 * 3600
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
    "exp as a string": lambda: jwt.encode(claims(exp=str(int(time.time()) + 600)), SECRET),
    "no token version": lambda: jwt.encode(claims(ver=None), SECRET),
    "an older token version": lambda: jwt.encode(claims(ver=-1), SECRET),
    "a user who never was": lambda: jwt.encode(claims(sub="999999"), SECRET),
    "an id past any row": lambda: jwt.encode(claims(sub="9223372036854775808"), SECRET),
    "issued in the future": lambda: jwt.encode(
        claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 3600 + 600), SECRET
    ),
    "a lifetime of 100 years": lambda: jwt.encode(claims(exp=int(time.time()) + 100 * 365 * 24 * 3600), SECRET),
    "a lifetime just over the configured one": lambda: jwt.encode(
        claims(iat=int(time.time()) - 10, exp=int(time.time()) - 10 + 900 + 1), SECRET
    ),
    "undecodable payload": lambda: f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.gYE.{b64({})}",
}


@pytest.mark.parametrize("attack", ATTACKS)
async def test_forged_tokens_are_401(identity, attack):
    answer = await verify(identity, ATTACKS[attack]())
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["detail"]
    # The reason is ours, never a decoder's own text.
    assert "codec" not in answer.text and "byte" not in answer.text


async def test_a_well_formed_token_with_the_right_key_passes(identity):
    assert (await verify(identity, jwt.encode(claims(), SECRET))).status_code == 200
    # The full configured lifetime (900 s), and an issuer's clock a little ahead of this one's, are fine.
    now = int(time.time())
    assert (await verify(identity, jwt.encode(claims(iat=now, exp=now + 900), SECRET))).status_code == 200
    assert (await verify(identity, jwt.encode(claims(iat=now + 20, exp=now + 620), SECRET))).status_code == 200


async def test_missing_or_malformed_authorization_is_401(identity):
    url = f"{identity.auth_url}/api/auth/verify"
    assert (await identity.client.get(url)).status_code == 401
    assert (await identity.client.get(url, headers={"Authorization": "Basic abc"})).status_code == 401


async def test_user_service_down_is_503_naming_it():
    settings = AuthSettings(env="test", jwt_secret=SECRET, user_service_url="http://127.0.0.1:1")
    async with serving(create_app(settings)) as url, httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/api/auth/login", json={"username": "a", "password": "b"})
    assert answer.status_code == 503
    assert "user-service" in answer.json()["detail"]


async def test_user_service_too_slow_is_503_saying_when_to_come_back():
    stand_in = FastAPI()

    @stand_in.post("/internal/credentials/verify")
    async def slow_check() -> dict[str, bool]:
        await asyncio.sleep(5)
        return {"valid": True}

    async with serving(stand_in) as user_service:
        settings = AuthSettings(
            env="test", jwt_secret=SECRET, user_service_url=user_service, user_service_timeout_s=0.3
        )
        async with serving(create_app(settings)) as url, httpx.AsyncClient() as client:
            answer = await client.post(f"{url}/api/auth/login", json={"username": "a", "password": "b"})
    assert answer.status_code == 503
    assert "user-service did not answer in time" in answer.json()["detail"]
    assert answer.headers["Retry-After"] == "1"


def test_a_secret_is_required_outside_development():
    for env in ("production", "test"):
        with pytest.raises(RuntimeError, match="JWT_SECRET is required"):
            create_app(AuthSettings(env=env, jwt_secret=""))
    with pytest.raises(RuntimeError, match="at least 32"):
        create_app(AuthSettings(env="production", jwt_secret="short"))
    assert create_app(AuthSettings(env="development", jwt_secret="")).state.tokens.secret
