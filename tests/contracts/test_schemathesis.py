"""Every FastAPI service's OpenAPI, tried by schemathesis against the running service: generated requests (valid
and invalid) to every operation, each answer checked for no server error, a declared status code, a declared
content type and headers, and a body that matches its declared schema.

The services run as processes on loopback ports, started by the suite's launcher with the data of this test
alone: PostgreSQL in a schema of its own, a private redis-server, no Kubernetes cluster. Calls carry the admin's
token (cluster-monitor's the collector token that its pushes need). The load balancer and the gateway are aiohttp
proxies that publish no OpenAPI of their own (the gateway serves the services' documents under /api/docs), so
there is nothing of theirs to try here.

Bounded and repeatable: a fixed number of examples per operation, generated from a fixed seed.
"""

import importlib
import itertools
import uuid

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from tests.support.databases import POSTGRES_DSN, RUN_ID, postgres_admin
from titanium_dev.suite import SERVICES, Suite, free_port

ADMIN = ("admin", "schemathesis-admin-password")
COLLECTOR_TOKEN = "schemathesis-collector-token"
MODULES = {
    "user-service": "user_service.main",
    "auth-service": "auth_service.main",
    "blog-service": "blog_service.main",
    "cluster-monitor": "cluster_monitor.main",
    "edge-config": "edge_config.main",
    "ops-mcp": "ops_mcp.main",
}
TRIED = tuple(MODULES)
MAX_EXAMPLES = 8
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
# Calls to what this test gives the services none of (path regexes, at the root and under /api/edge): edge-config
# answers 503 naming the missing Kubernetes cluster, and 502/504 naming a device that does not answer (generated
# device addresses lead nowhere). Every other 5xx fails.
DEPENDENCY_DOWN = {
    "edge-config": [
        (r"/kubernetes/", ["503"]),
        (r"/devices/\{device_id\}/local-config$", ["502", "504"]),
        (r"/devices/\{device_id\}/reload$", ["502"]),
    ],
}
# Calls that would end the admin's own session or account, which every other call uses: they act on an account of
# their own instead.
ON_AN_ACCOUNT_OF_THEIR_OWN = {
    ("auth-service", "POST", "/api/auth/logout"),
    ("user-service", "PATCH", "/api/users/{user_id}"),
    ("user-service", "DELETE", "/api/users/{user_id}"),
    ("user-service", "POST", "/internal/users/{user_id}/revoke-tokens"),
}


@pytest.fixture(scope="module")
def postgres_schema():
    """A PostgreSQL schema for this module's services, dropped afterwards."""
    schema = f"st_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    postgres_admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        postgres_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def services(tmp_path_factory, postgres_schema):
    specs = tuple(spec for spec in SERVICES if spec.name in TRIED)
    # What ops-mcp also reads but is not started here: a closed port each, never another suite on this machine.
    absent = {
        name: f"http://127.0.0.1:{free_port()}" for name in ("LOAD_BALANCER_URL", "GATEWAY_URLS", "DASHBOARD_URLS")
    }
    env = absent | {
        "DATABASE_URL": POSTGRES_DSN,
        "DATABASE_SCHEMA": postgres_schema,
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
        "COLLECTOR_TOKENS": COLLECTOR_TOKEN,
        "CLUSTER_SOURCE": "simulated",
        "KUBE_MODE": "off",
        # Generated device addresses are public ones (which the policy admits) or refused: never a loopback port
        # of this machine. Devices that do not answer are given up on quickly.
        "DEVICE_ALLOWED_CIDRS": "192.0.2.0/24",
        "HEALTH_TIMEOUT_S": "0.5",
        "RELOAD_TIMEOUT_S": "0.5",
        "RELOAD_ATTEMPTS": "1",
        "LOCAL_CONFIG_TIMEOUT_S": "0.5",
        # Generated logins fail from one address; the accounts this test makes must still log in.
        "LOGIN_FAILURES_PER_ADDRESS": "1000000",
        # Generated registrations come from one address too (the limit itself: user-service's own tests).
        "REGISTRATION_BURST": "1000000",
    }
    suite = Suite(
        ports={spec.name: free_port() for spec in specs},
        data_dir=tmp_path_factory.mktemp("schemathesis-data"),
        extra_env=env,
        echo=None,
        services=specs,
    )
    with suite:
        yield suite


class Accounts:
    """The admin's token, and new accounts for the calls that end their own session or account."""

    def __init__(self, suite: Suite) -> None:
        self.client = httpx.Client(timeout=30)
        self.user_url, self.auth_url = suite.url("user-service"), suite.url("auth-service")
        self.admin_token = self.token(*ADMIN)
        self.admin_id = self.client.get(
            f"{self.auth_url}/api/auth/verify", headers={"Authorization": f"Bearer {self.admin_token}"}
        ).json()["sub"]
        self._names = (f"st-{n}" for n in itertools.count(1))

    def token(self, username: str, password: str) -> str:
        answer = self.client.post(f"{self.auth_url}/api/auth/login", json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    def new_account(self) -> tuple[int, str]:
        """A new ordinary account: its id and its token."""
        name, password = next(self._names), "password-123"
        body = {"username": name, "email": f"{name}@example.com", "password": password}
        answer = self.client.post(f"{self.user_url}/api/users", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()["id"], self.token(name, password)


@pytest.fixture(scope="module")
def accounts(services):
    accounts = Accounts(services)
    yield accounts
    accounts.client.close()


def _document(service: str) -> dict:
    """The service's OpenAPI as its code builds it: the document the running process serves (which
    `test_the_running_services_serve_these_documents` checks), read at collection so every operation is a test of
    its own. (Schemathesis's other way, a schema loaded from a fixture at run time, relies on a pytest internal,
    `Node._nodeid`, that pytest 9.2 no longer has.)"""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("ENV", "development")
        return importlib.import_module(MODULES[service]).create_app().openapi()


def _schema(service: str):
    operations = [
        {"include-path-regex": path, "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx", *statuses]}}}
        for path, statuses in DEPENDENCY_DOWN.get(service, [])
    ]
    config = SchemathesisConfig.from_dict(
        {
            "seed": 18,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False} | {name: {"enabled": True} for name in CHECKS},
            "operations": operations,
        }
    )
    return schemathesis.openapi.from_dict(_document(service), config=config)


def _call(service: str, case, services: Suite, accounts: Accounts) -> None:
    token = COLLECTOR_TOKEN if service == "cluster-monitor" else accounts.admin_token
    if (service, case.method.upper(), case.path) in ON_AN_ACCOUNT_OF_THEIR_OWN:
        user_id, token = accounts.new_account()
        if str(case.path_parameters.get("user_id")) == accounts.admin_id:
            case.path_parameters["user_id"] = user_id
    case.call_and_validate(base_url=services.url(service), headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _tests_of(service: str):
    @_schema(service).parametrize()
    def test(case, services, accounts):
        _call(service, case, services, accounts)

    return test


test_user_service = _tests_of("user-service")
test_auth_service = _tests_of("auth-service")
test_blog_service = _tests_of("blog-service")
test_cluster_monitor = _tests_of("cluster-monitor")
test_edge_config = _tests_of("edge-config")
test_ops_mcp = _tests_of("ops-mcp")


@pytest.mark.parametrize("service", TRIED)
def test_the_running_services_serve_these_documents(service, services):
    assert httpx.get(f"{services.url(service)}/openapi.json", timeout=30).json() == _document(service)
