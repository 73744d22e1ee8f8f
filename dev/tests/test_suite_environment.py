"""What the launcher tells each process: in development every auth-service replica signs with one secret; the
gateway's pools list every replica of every service it routes to."""

import pytest

from api_gateway.settings import PREFIXES
from titanium_dev.suite import SERVICES, Suite, replica_name

AUTH = next(spec for spec in SERVICES if spec.name == "auth-service")


def auth_secrets(suite: Suite) -> set[str]:
    return {suite.env_for(AUTH, name).get("JWT_SECRET", "") for name in suite.replica_names(AUTH.name)}


def test_every_replica_and_restart_in_development_shares_one_made_up_secret(monkeypatch, tmp_path):
    monkeypatch.delenv("ENV", raising=False)
    monkeypatch.delenv("JWT_SECRET", raising=False)
    suite = Suite(replicas=2, data_dir=tmp_path, echo=None)
    assert suite.replica_names(AUTH.name) == ["auth-service", replica_name("auth-service", 1)]
    (secret,) = auth_secrets(suite)
    assert len(secret) >= 32
    assert auth_secrets(Suite(replicas=2, data_dir=tmp_path, echo=None)) != {secret}  # made anew for each run


@pytest.mark.parametrize("env", ["test", "production"])
def test_outside_development_no_secret_is_made_up(monkeypatch, tmp_path, env):
    monkeypatch.setenv("ENV", env)
    monkeypatch.delenv("JWT_SECRET", raising=False)
    assert auth_secrets(Suite(replicas=2, data_dir=tmp_path, echo=None)) == {""}


def test_a_given_secret_is_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("ENV", raising=False)
    monkeypatch.setenv("JWT_SECRET", "s" * 40)
    assert auth_secrets(Suite(replicas=2, data_dir=tmp_path, echo=None)) == {"s" * 40}


def test_the_gateway_pools_every_replica_of_every_service_it_routes_to(monkeypatch, tmp_path):
    monkeypatch.delenv("ENV", raising=False)
    suite = Suite(replicas=2, data_dir=tmp_path, echo=None)
    gateway = next(spec for spec in SERVICES if spec.name == "api-gateway")
    env = suite.env_for(gateway)
    for upstream in sorted(set(PREFIXES.values())):
        spec = next(spec for spec in SERVICES if spec.name == upstream)
        replicas = [suite.url(name) for name in suite.replica_names(upstream)]
        assert env[spec.url_setting].split(",") == replicas, upstream
