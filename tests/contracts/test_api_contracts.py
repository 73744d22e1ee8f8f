"""Every FastAPI route declares what it answers: a named response model for its success (never a bare dict), and
its error answers in the suite's error shape. The OpenAPI document is what FastAPI derives from each route's
`response_model`, return annotation and `responses=`, so it is what is checked here; a route that returns
`dict[str, Any]` shows up as an anonymous object schema and fails."""

import importlib
import json

import pytest

SERVICES = {
    "auth-service": "auth_service.main",
    "user-service": "user_service.main",
    "blog-service": "blog_service.main",
    "cluster-monitor": "cluster_monitor.main",
    "edge-config": "edge_config.main",
    "ops-mcp": "ops_mcp.main",
}

# Error answers that carry the error body plus the fields older clients read.
ERROR_MODELS = {"ErrorBody", "OriginalLoginFailure", "ReloadFailed", "Readiness"}


def _document(service: str, monkeypatch) -> dict:
    monkeypatch.setenv("ENV", "development")
    return importlib.import_module(SERVICES[service]).create_app().openapi()


def _operations(document: dict):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def _named(schema: dict) -> bool:
    """A schema that names a model (a $ref, or a list or union of them), or is a plain scalar."""
    if "$ref" in schema:
        return True
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return all(_named(part) for part in schema[key])
    if schema.get("type") == "array":
        return _named(schema.get("items", {}))
    return schema.get("type") in {"string", "integer", "number", "boolean", "null"}


def _untyped(operation: dict) -> list[str]:
    found = []
    for status, response in operation["responses"].items():
        for media_type, content in response.get("content", {}).items():
            if status.startswith("2") and media_type == "application/json" and not _named(content.get("schema", {})):
                found.append(f"{status}: {json.dumps(content.get('schema'))[:120]}")
            if status[0] in "45":
                ref = content.get("schema", {}).get("$ref", "")
                if ref.rpartition("/")[2] not in ERROR_MODELS:
                    found.append(f"{status} is not an error body: {ref or content.get('schema')}")
    return found


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_route_declares_its_answers(service, monkeypatch):
    wrong = {}
    for name, operation in _operations(_document(service, monkeypatch)):
        problems = _untyped(operation)
        if problems:
            wrong[name] = problems
    assert wrong == {}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_error_answers_are_declared(service, monkeypatch):
    """Every operation that takes input declares 422, and one that reads a body 400 (a body that is not JSON), both
    in the error body (which the first test checks)."""
    for name, operation in _operations(_document(service, monkeypatch)):
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in operation["responses"], name
        if operation.get("requestBody"):
            assert "400" in operation["responses"], name


def test_an_untyped_dict_route_is_caught():
    from typing import Any

    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/typed")
    async def typed() -> list[int]:
        return [1]

    @app.get("/untyped")
    async def untyped() -> dict[str, Any]:
        return {}

    operations = dict(_operations(app.openapi()))
    assert _untyped(operations["GET /typed"]) == []
    assert _untyped(operations["GET /untyped"]) != []


def _api_routes(routes):
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # an included router
            yield from _api_routes(route.original_router.routes)


def _run_on_threads(dependant, seen: set[str]) -> set[str]:
    """The endpoint and dependencies FastAPI would run on its thread pool: a plain `def` costs a hand-off to a
    worker thread and back on every request (a fifth of blog-service's CPU under load for two one-line lookups)."""
    import inspect

    call = dependant.call
    if call is not None and not (
        inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call) or inspect.isgeneratorfunction(call)
    ):
        seen.add(getattr(call, "__qualname__", repr(call)))
    for sub in dependant.dependencies:
        _run_on_threads(sub, seen)
    return seen


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_no_route_runs_on_the_thread_pool(service, monkeypatch):
    monkeypatch.setenv("ENV", "development")
    app = importlib.import_module(SERVICES[service]).create_app()
    threaded = {
        f"{sorted(route.methods)} {route.path}: {name}"
        for route in _api_routes(app.routes)
        for name in _run_on_threads(route.dependant, set())
    }
    assert threaded == set()


def test_a_plain_def_dependency_is_caught():
    from typing import Annotated

    from fastapi import Depends, FastAPI

    def lookup() -> int:
        return 1

    async def awaited() -> int:
        return 2

    app = FastAPI()

    @app.get("/mixed")
    async def mixed(a: Annotated[int, Depends(lookup)], b: Annotated[int, Depends(awaited)]) -> int:
        return a + b

    (route,) = [r for r in _api_routes(app.routes) if r.path == "/mixed"]
    assert _run_on_threads(route.dependant, set()) == {"test_a_plain_def_dependency_is_caught.<locals>.lookup"}


def _schema_of(document: dict, operation: str, status: str = "200") -> dict:
    method, path = operation.split(" ", 1)
    return document["paths"][path][method.lower()]["responses"][status]["content"]["application/json"]["schema"]


def _model(document: dict, ref: str) -> dict:
    return document["components"]["schemas"][ref.rpartition("/")[2]]


def test_the_original_clients_shapes_are_in_the_documents(monkeypatch):
    """What the original system's scripts and pages read stays declared: the bare post list (no parameters, or
    offset/limit) beside the page object, and the original login answer's `status` and `token`."""
    blog = _document("blog-service", monkeypatch)
    shapes = _schema_of(blog, "GET /api/posts")["anyOf"]
    listing = next(s for s in shapes if s.get("type") == "array")
    assert set(_model(blog, listing["items"]["$ref"])["required"]) >= {"id", "title", "author", "created_at", "excerpt"}
    assert any(set(_model(blog, s["$ref"])["properties"]) >= {"items", "total", "page"} for s in shapes if "$ref" in s)
    parameters = {p["name"] for p in blog["paths"]["/api/posts"]["get"]["parameters"]}
    assert parameters == {"page", "size", "offset", "limit"}
    assert all(not p.get("required") for p in blog["paths"]["/api/posts"]["get"]["parameters"])

    auth = _document("auth-service", monkeypatch)
    login = _model(auth, _schema_of(auth, "POST /api/login")["$ref"])
    assert {"status", "token"} <= set(login["required"])
    assert login["properties"]["status"].get("const", login["properties"]["status"].get("enum", [None])[0]) == "success"
