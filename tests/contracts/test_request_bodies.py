"""The one rule for request bodies (docs/request-bodies.md), on every route that takes one. The routes are read from
each FastAPI service's OpenAPI document, so a route added later is covered without touching this file.

- A body is JSON: `application/json` or `+json`; a body without a Content-Type, or with curl's default form type, is
  read as JSON; any other type is 415 before the route runs.
- Unknown fields are refused (422), except the fields that are the caller's own data (`FREE_FORM`).
"""

import importlib
import os
import re
from unittest import mock

import httpx
import pytest

from tests.contracts.test_api_contracts import SERVICES

# Request models whose extra keys are data, by the original system's contract: an edge device's config keeps any
# key it is given (`PUT /config/{id}` with `{"device_type", "port", "gpu": ...}`).
FREE_FORM = {"ConfigBody", "ConfigPatch"}
BODY_METHODS = ("post", "put", "patch", "delete")


def _apps() -> dict:
    with mock.patch.dict(os.environ, {"ENV": "development"}):
        return {service: importlib.import_module(module).create_app() for service, module in SERVICES.items()}


APPS = _apps()


def _routes_with_bodies() -> list[tuple[str, str, str, dict]]:
    found = []
    for service, app in APPS.items():
        for path, operations in app.openapi()["paths"].items():
            for method, operation in operations.items():
                if method in BODY_METHODS and "requestBody" in operation:
                    found.append((service, method.upper(), path, operation))
    return found


ROUTES = _routes_with_bodies()
IDS = [f"{service} {method} {path}" for service, method, path, _ in ROUTES]


def _models(service: str, schema: dict) -> dict[str, dict]:
    """The models a body schema is made of, by name: through `$ref`, `anyOf` (an optional body) and nested
    objects' properties."""
    found, todo = {}, [schema]
    components = APPS[service].openapi()["components"]["schemas"]
    while todo:
        part = todo.pop()
        name = part.get("$ref", "").rpartition("/")[2]
        if name and name not in found:
            found[name] = components[name]
            todo.extend(components[name].get("properties", {}).values())
        todo.extend(part.get("anyOf", []) + part.get("allOf", []) + ([part["items"]] if "items" in part else []))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_every_service_has_routes_with_bodies_here():
    assert {service for service, *_ in ROUTES} >= {"auth-service", "user-service", "blog-service", "edge-config"}


@pytest.mark.parametrize(("service", "method", "path", "operation"), ROUTES, ids=IDS)
def test_unknown_fields_are_refused(service, method, path, operation):
    models = _models(service, operation["requestBody"]["content"]["application/json"]["schema"])
    assert models, "a body that is no model"
    for name, schema in models.items():
        if name in FREE_FORM:
            assert schema.get("additionalProperties", True) is not False
        else:
            assert schema.get("additionalProperties") is False, f"{name} takes unknown fields: give it extra='forbid'"


async def _send(service: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """The request straight into the app (no lifespan: the rule is applied before any route runs)."""
    transport = httpx.ASGITransport(app=APPS[service])
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, _concrete(path), content=body, headers=headers)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x"])
@pytest.mark.parametrize(("service", "method", "path", "operation"), ROUTES, ids=IDS)
async def test_a_body_of_another_type_is_415(service, method, path, operation, content_type):
    answer = await _send(service, method, path, b"{}", {"Content-Type": content_type})
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["detail"]


@pytest.mark.parametrize(
    "headers", [{}, {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "application/json"}],
    ids=["no content type", "curl's form type", "json"],
)  # fmt: skip
@pytest.mark.parametrize(("service", "method", "path", "operation"), ROUTES, ids=IDS)
async def test_a_body_without_a_json_type_is_read_as_json(service, method, path, operation, headers):
    """A body that is not well-formed JSON is refused by the JSON parser (422 json_invalid), before any route's
    dependencies: so it was read as JSON, whatever Content-Type it had."""
    answer = await _send(service, method, path, b'{"unfinished": ', headers)
    assert answer.status_code == 422, answer.text
    assert [error["type"] for error in answer.json()["detail"]] == ["json_invalid"]
