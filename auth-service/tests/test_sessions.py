"""Tokens end with their user: delete, role change, password change and logout revoke them; refresh tokens
rotate, and a reused one revokes its family."""

import asyncio

import httpx
import pytest

from tests.support.identity import ADMIN
from tests.support.polling import eventually


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def verify_status(identity, token: str) -> int:
    answer = await identity.client.get(f"{identity.auth_url}/api/auth/verify", headers=bearer(token))
    return answer.status_code


async def refused_once_heard(identity, token: str) -> httpx.Response:
    """The verify answer once auth-service has heard user-service's announcement (Redis pub/sub) and dropped the
    state it kept: a verify sent right after the change can reach auth-service before the announcement is read,
    milliseconds on a quiet machine (CI saw it overtaken once under load)."""
    return await eventually(
        lambda: identity.client.get(f"{identity.auth_url}/api/auth/verify", headers=bearer(token)),
        until=lambda answer: answer.status_code == 401,
        what="auth-service to refuse the token",
    )


async def admin_headers(identity) -> dict[str, str]:
    return bearer(await identity.token(*ADMIN))


async def test_a_deleted_users_token_is_refused(identity):
    user, auth = await identity.account("gone")
    token = auth["Authorization"].split()[1]
    assert await verify_status(identity, token) == 200
    deleted = await identity.client.delete(f"{identity.user_url}/api/users/{user['id']}", headers=auth)
    assert deleted.status_code == 204
    answer = await refused_once_heard(identity, token)
    assert answer.json()["detail"] == "the user of this token no longer exists"


async def test_a_deleted_users_id_is_never_given_again(identity):
    first, auth = await identity.account("first")
    await identity.client.delete(f"{identity.user_url}/api/users/{first['id']}", headers=auth)
    second = await identity.register("second")
    assert second["id"] > first["id"]
    # The old token names the old id, which no one has now.
    assert await verify_status(identity, auth["Authorization"].split()[1]) == 401


async def test_a_demoted_admins_token_is_refused(identity):
    user, _ = await identity.account("boss")
    admin = await admin_headers(identity)
    url = f"{identity.user_url}/api/users/{user['id']}"
    assert (await identity.client.patch(url, json={"role": "admin"}, headers=admin)).status_code == 200
    boss_admin = await identity.token("boss")
    verified = await identity.client.get(f"{identity.auth_url}/api/auth/verify", headers=bearer(boss_admin))
    assert verified.json()["role"] == "admin"
    assert (await identity.client.patch(url, json={"role": "user"}, headers=admin)).status_code == 200
    await refused_once_heard(identity, boss_admin)
    # Writes that trusted a cached answer stop too: user-service's own verify cache heard the revocation.
    change = await identity.client.patch(url, json={"email": "b@example.com"}, headers=bearer(boss_admin))
    assert change.status_code == 401


async def test_a_password_change_ends_earlier_tokens(identity):
    user, auth = await identity.account("mover")
    url = f"{identity.user_url}/api/users/{user['id']}"
    assert (await identity.client.patch(url, json={"password": "another-pass-1"}, headers=auth)).status_code == 200
    assert await verify_status(identity, auth["Authorization"].split()[1]) == 401
    assert await verify_status(identity, await identity.token("mover", "another-pass-1")) == 200


async def test_an_email_change_keeps_tokens(identity):
    user, auth = await identity.account("keeper")
    url = f"{identity.user_url}/api/users/{user['id']}"
    assert (await identity.client.patch(url, json={"email": "k2@example.com"}, headers=auth)).status_code == 200
    assert await verify_status(identity, auth["Authorization"].split()[1]) == 200


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(identity):
    await identity.register("roller")
    session = await identity.login("roller")
    url = f"{identity.auth_url}/api/auth/refresh"
    rotated = await identity.client.post(url, json={"refresh_token": session["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != session["refresh_token"]
    assert await verify_status(identity, second["access_token"]) == 200

    reused = await identity.client.post(url, json={"refresh_token": session["refresh_token"]})
    assert reused.status_code == 401
    assert "already used" in reused.json()["detail"]
    # The family is gone (the thief's or the owner's newer token alike), and so are its access tokens.
    assert (await identity.client.post(url, json={"refresh_token": second["refresh_token"]})).status_code == 401
    assert await verify_status(identity, second["access_token"]) == 401
    assert await verify_status(identity, session["access_token"]) == 401


async def test_unknown_refresh_tokens_are_401(identity):
    url = f"{identity.auth_url}/api/auth/refresh"
    assert (await identity.client.post(url, json={"refresh_token": "made-up"})).status_code == 401
    assert (await identity.client.post(url, json={})).status_code == 422


async def test_concurrent_refreshes_with_one_token_give_at_most_one_new_token(identity):
    await identity.register("racer")
    session = await identity.login("racer")
    url = f"{identity.auth_url}/api/auth/refresh"
    answers = await asyncio.gather(
        *(identity.client.post(url, json={"refresh_token": session["refresh_token"]}) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers).count(200) <= 1


async def test_logout_ends_the_session_and_the_access_tokens(identity):
    await identity.register("leaver")
    session = await identity.login("leaver")
    other_device = await identity.login("leaver")
    out = await identity.client.post(
        f"{identity.auth_url}/api/auth/logout",
        json={"refresh_token": session["refresh_token"]},
        headers=bearer(session["access_token"]),
    )
    assert out.status_code == 204
    assert await verify_status(identity, session["access_token"]) == 401
    assert await verify_status(identity, other_device["access_token"]) == 401
    refresh = f"{identity.auth_url}/api/auth/refresh"
    for token in (session["refresh_token"], other_device["refresh_token"]):
        assert (await identity.client.post(refresh, json={"refresh_token": token})).status_code == 401
    assert await verify_status(identity, await identity.token("leaver")) == 200


async def test_logout_needs_a_token(identity):
    url = f"{identity.auth_url}/api/auth/logout"
    assert (await identity.client.post(url)).status_code == 401
    assert (await identity.client.post(url, json={"refresh_token": "made-up"})).status_code == 401


async def test_logout_with_an_expired_access_token_still_ends_the_session(identity):
    await identity.register("late")
    session = await identity.login("late")
    out = await identity.client.post(
        f"{identity.auth_url}/api/auth/logout",
        json={"refresh_token": session["refresh_token"]},
        headers=bearer("expired.access.token"),
    )
    assert out.status_code == 204
    refresh = f"{identity.auth_url}/api/auth/refresh"
    assert (await identity.client.post(refresh, json={"refresh_token": session["refresh_token"]})).status_code == 401
    assert await verify_status(identity, session["access_token"]) == 401


async def test_a_refresh_token_cannot_log_out_another_user(identity):
    await identity.register("one")
    await identity.register("two")
    first, second = await identity.login("one"), await identity.login("two")
    out = await identity.client.post(
        f"{identity.auth_url}/api/auth/logout",
        json={"refresh_token": second["refresh_token"]},
        headers=bearer(first["access_token"]),
    )
    assert out.status_code == 403
    # ... and leaves it as it was.
    refresh = f"{identity.auth_url}/api/auth/refresh"
    assert (await identity.client.post(refresh, json={"refresh_token": second["refresh_token"]})).status_code == 200


async def test_an_expired_refresh_token_is_refused(database_target):
    from auth_service.main import MIGRATIONS
    from auth_service.sessions import RefreshTokens
    from auth_service.settings import AuthSettings
    from auth_service.tokens import InvalidToken
    from titanium_common.db import Database

    db = Database.from_settings(AuthSettings(env="test", **database_target.settings()), migrations=MIGRATIONS)
    await db.start()
    try:
        expired = RefreshTokens(db, ttl_s=-1)
        token = await expired.start(user_id=1, token_version=0)
        with pytest.raises(InvalidToken, match="expired"):
            await expired.rotate(token)
    finally:
        await db.close()
