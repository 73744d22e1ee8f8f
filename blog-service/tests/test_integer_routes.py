"""Every route with an integer in its path or query, of every service in front of a database, given integers no
database column holds: a clear 404 or 422, never a 500."""

import pytest

from blog_service.main import create_app as create_blog_app
from blog_service.settings import BlogSettings
from tests.support.identity import ADMIN

# Past PostgreSQL's INTEGER, past SQLite's 64 bits, far past both, and below zero.
OUT_OF_RANGE = [2**31, 2**63, 67798391897507315580928, -1]
# A valid body for the writes, so that only the integer can be wrong.
BODIES = {"PATCH": {"/api/posts/{post_id}": {"title": "t"}, "/api/users/{user_id}": {"email": "e@example.com"}}}


def integer_routes(app) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(method, path template, [(where, name)]) of every operation with an integer parameter."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            integers = []
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                types = {schema.get("type")} | {option.get("type") for option in schema.get("anyOf", [])}
                if "integer" in types:
                    integers.append((parameter["in"], parameter["name"]))
            if integers:
                found.append((method.upper(), path, integers))
    return found


def test_the_walk_finds_the_routes_it_must():
    from user_service.main import create_app as create_user_app
    from user_service.settings import UserSettings

    paths = {path for _, path, _ in integer_routes(create_user_app(UserSettings(env="test")))}
    assert {"/api/users/{user_id}", "/api/users", "/internal/users/{user_id}/token-state"} <= paths
    blog_paths = {p for _, p, _ in integer_routes(create_blog_app(BlogSettings(env="test")))}
    assert {"/api/posts/{post_id}", "/api/posts"} <= blog_paths


@pytest.fixture
async def blog_url(identity, database_target):
    from tests.support.servers import serving

    settings = BlogSettings(env="test", auth_service_url=identity.auth_url, **database_target.settings())
    async with serving(create_blog_app(settings)) as url:
        yield url


async def test_out_of_range_integers_are_404_or_422_everywhere(identity, blog_url):
    admin = {"Authorization": f"Bearer {await identity.token(*ADMIN)}"}
    services = [(identity.user_app, identity.user_url), (identity.auth_app, identity.auth_url)]
    services.append((create_blog_app(BlogSettings(env="test")), blog_url))
    walked = 0
    for app, base in services:
        for method, template, integers in integer_routes(app):
            # One integer out of range at a time (any other keeps its default), so that none hides another.
            for where, name in integers:
                for value in OUT_OF_RANGE:
                    path = template.replace("{" + name + "}", str(value)) if where == "path" else template
                    query = {name: str(value)} if where == "query" else {}
                    body = BODIES.get(method, {}).get(template)
                    answer = await identity.client.request(method, base + path, params=query, json=body, headers=admin)
                    assert answer.status_code in (404, 422), (method, path, query, answer.status_code, answer.text)
                    assert answer.json()["detail"]
                    walked += 1
    assert walked >= 4 * 12
