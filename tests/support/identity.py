"""user-service and auth-service as real servers on loopback ports, wired to each other, for tests that need
accounts and tokens (user-service, auth-service, blog-service). Uses `database_target` and `redis_target`."""

from dataclasses import dataclass

import httpx
import pytest

from auth_service.main import create_app as create_auth_app
from auth_service.settings import AuthSettings
from tests.support.servers import free_port, serving
from user_service.main import create_app as create_user_app
from user_service.settings import UserSettings

ADMIN = ("admin", "admin-password-1")


@dataclass
class IdentityServices:
    user_url: str
    auth_url: str
    user_app: object
    auth_app: object
    client: httpx.AsyncClient

    async def register(self, username: str, password: str = "password-123", email: str | None = None) -> dict:
        email = email or f"{username}@example.com"
        answer = await self.client.post(
            f"{self.user_url}/api/users", json={"username": username, "email": email, "password": password}
        )
        assert answer.status_code == 201, answer.text
        return answer.json()

    async def login(self, username: str, password: str = "password-123") -> dict:
        """The whole login answer: access and refresh token."""
        answer = await self.client.post(
            f"{self.auth_url}/api/auth/login", json={"username": username, "password": password}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def token(self, username: str, password: str = "password-123") -> str:
        return (await self.login(username, password))["access_token"]

    async def account(self, username: str) -> tuple[dict, dict[str, str]]:
        """A new user and the headers that carry its token."""
        user = await self.register(username)
        return user, {"Authorization": f"Bearer {await self.token(username)}"}


@pytest.fixture
def identity_settings(database_target, redis_target):
    """Settings of both services; tests may change them before `identity` starts the servers."""
    user_port, auth_port = free_port(), free_port()
    # Revocations are announced on a channel of this test's own.
    channel = redis_target.prefix + "revoked"
    user = UserSettings(
        env="test",
        port=user_port,
        auth_service_url=f"http://127.0.0.1:{auth_port}",
        redis_url=redis_target.url,
        redis_prefix=redis_target.prefix + "users:",
        revocation_channel=channel,
        admin_username=ADMIN[0],
        admin_password=ADMIN[1],
        **database_target.settings(),
    )
    auth = AuthSettings(
        env="test",
        port=auth_port,
        user_service_url=f"http://127.0.0.1:{user_port}",
        jwt_secret="x" * 48,
        redis_url=redis_target.url,
        redis_prefix=redis_target.prefix + "auth:",
        revocation_channel=channel,
        **database_target.settings(),
    )
    return user, auth


@pytest.fixture
async def identity(identity_settings):
    user_settings, auth_settings = identity_settings
    user_app, auth_app = create_user_app(user_settings), create_auth_app(auth_settings)
    async with (
        serving(user_app, user_settings.port) as user_url,
        serving(auth_app, auth_settings.port) as auth_url,
        httpx.AsyncClient(timeout=30) as client,
    ):
        yield IdentityServices(user_url, auth_url, user_app, auth_app, client)


@dataclass(frozen=True)
class AuthProcesses:
    """user-service and auth-service as processes, once per test session, with the admin account `ADMIN`."""

    auth_url: str
    user_url: str

    async def token(self, username: str = ADMIN[0], password: str = ADMIN[1]) -> str:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                f"{self.auth_url}/api/auth/login", json={"username": username, "password": password}
            )
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    async def admin_token(self) -> str:
        return await self.token()

    async def user_token(self, username: str) -> str:
        """A new account with the ordinary role, and its token."""
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"username": username, "email": f"{username}@example.com", "password": "password-123"}
            answer = await client.post(f"{self.user_url}/api/users", json=body)
        assert answer.status_code == 201, answer.text
        return await self.token(username, "password-123")


@pytest.fixture(scope="session")
def auth_processes(tmp_path_factory):
    """For tests that only need admin tokens verified by a real auth-service (cheaper than `identity` per test)."""
    from titanium_dev.suite import SERVICES, Suite

    services = tuple(s for s in SERVICES if s.name in ("user-service", "auth-service"))
    suite = Suite(
        ports={s.name: free_port() for s in services},
        data_dir=tmp_path_factory.mktemp("auth-processes"),
        start_redis=False,
        extra_env={"ADMIN_USERNAME": ADMIN[0], "ADMIN_PASSWORD": ADMIN[1], "REDIS_URL": "", "DATABASE_URL": ""},
        echo=None,
        services=services,
    )
    with suite:
        yield AuthProcesses(suite.url("auth-service"), suite.url("user-service"))
