"""The admin of ADMIN_USERNAME: created at start-up, or the start-up stops and says why (never a silent no-admin)."""

import httpx
import pytest

from tests.support.servers import ServiceProcess, serving
from user_service.main import create_app

ADMIN_ENV = {"ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "admin-password-1", "REDIS_URL": ""}
DEFAULT_ADMIN_EMAIL = "admin@localhost.localdomain"


async def register_with_the_admins_email(identity_settings) -> None:
    """Earlier data: someone registered with the e-mail ADMIN_EMAIL gives the admin by default."""
    settings = identity_settings[0].model_copy(update={"admin_username": "", "redis_url": ""})
    async with serving(create_app(settings)) as url, httpx.AsyncClient(timeout=30) as client:
        body = {"username": "early", "email": DEFAULT_ADMIN_EMAIL, "password": "password-123"}
        assert (await client.post(f"{url}/api/users", json=body)).status_code == 201


async def test_an_admin_email_that_is_taken_stops_the_start_up_saying_why(identity_settings, database_target):
    await register_with_the_admins_email(identity_settings)
    process = ServiceProcess("user_service", database_target.env() | ADMIN_ENV)
    with pytest.raises(RuntimeError, match="exited at start-up") as stopped:
        async with process:
            pass
    assert "ADMIN_EMAIL" in str(stopped.value) and DEFAULT_ADMIN_EMAIL in str(stopped.value)
    assert "make clean-data" in str(stopped.value)


async def test_with_a_free_admin_email_the_admin_is_created(identity_settings, database_target):
    await register_with_the_admins_email(identity_settings)
    env = database_target.env() | ADMIN_ENV | {"ADMIN_EMAIL": "root@example.com"}
    async with ServiceProcess("user_service", env) as process, httpx.AsyncClient(timeout=30) as client:
        check = {"username": "admin", "password": "admin-password-1"}
        answer = await client.post(f"{process.url}/internal/credentials/verify", json=check)
    assert answer.status_code == 200 and answer.json()["role"] == "admin"
