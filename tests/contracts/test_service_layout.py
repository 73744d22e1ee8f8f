"""Every service has the same shape, so that a reader of one knows where to look in the others:

- `api.py` holds routes only: no classes (request and response models live in `schemas.py`, the rest in a domain
  module), and every function in it is a route, a dependency of a route, or a part of answering one request (it
  takes the request);
- `models.py` holds tables (SQLAlchemy) and never Pydantic models; `schemas.py` holds Pydantic models and never
  tables; no other module declares either; nothing is called `model.py`, which could be either;
- no module imports, through any path, a module that imports it back: the modules of a package form layers.

Read from the source with `ast`, so a new service is covered as soon as its folder has a `<package>/main.py`."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(
    main.parent
    for main in ROOT.glob("*/*/main.py")
    if (main.parent.parent / "pyproject.toml").is_file() and main.parent.parent.name not in {"common", "dev"}
)
KIT = ROOT / "common" / "titanium_common"

# FastAPI's route decorators (`@router.get(...)`) and aiohttp's registrations (`app.router.add_get(path, handler)`).
ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "head", "options", "websocket", "api_route"}
AIOHTTP_REGISTRATIONS = {"add_get", "add_post", "add_put", "add_patch", "add_delete", "add_head", "add_route"}
REQUEST_TYPES = {"Request", "WebSocket"}


def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _ids(package: Path) -> str:
    return f"{package.parent.name}/{package.name}"


def test_every_service_is_covered():
    names = {package.parent.name for package in SERVICES}
    assert {"api-gateway", "auth-service", "blog-service", "cluster-monitor", "dashboard-ui", "edge-config"} <= names
    assert {"load-balancer", "ops-mcp", "user-service"} <= names


def _called_name(node: ast.expr) -> str | None:
    """`f` for `f` and `f(...)`; the attribute's name for `x.f`."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_route(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in ROUTE_DECORATORS
        for decorator in function.decorator_list
    )


def _registered_and_depended_on(module: ast.Module) -> set[str]:
    """Names handed to `Depends(...)` or to an aiohttp route registration (directly, or as a handler factory)."""
    names = set()
    for node in ast.walk(module):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        called = _called_name(node.func)
        if called == "Depends":
            names.add(_called_name(node.args[0]))
        elif called in AIOHTTP_REGISTRATIONS:
            names.update(_called_name(argument) for argument in node.args[1:])
    return names


def _takes_the_request(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    arguments = function.args.args
    return bool(arguments) and _called_name(arguments[0].annotation) in REQUEST_TYPES if arguments else False


def _api_problems(api: Path) -> list[str]:
    module = _parsed(api)
    allowed = _registered_and_depended_on(module) | {"add_routes"}
    problems = []
    for node in ast.walk(module):
        if isinstance(node, ast.ClassDef):
            problems.append(f"line {node.lineno}: class {node.name} (models go to schemas.py, logic to its module)")
    for node in module.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if not (_is_route(node) or node.name in allowed or _takes_the_request(node)):
            problems.append(f"line {node.lineno}: {node.name}() is neither a route nor a dependency of one")
    return problems


@pytest.mark.parametrize("package", SERVICES, ids=_ids)
def test_api_holds_routes_only(package: Path):
    assert _api_problems(package / "api.py") == []


def test_the_rule_finds_a_model_and_a_helper_in_an_api_module(tmp_path):
    api = tmp_path / "api.py"
    api.write_text(
        "from fastapi import APIRouter, Depends\nfrom pydantic import BaseModel\nrouter = APIRouter()\n"
        "class Item(BaseModel):\n    name: str\n"
        "def _total(items):\n    return len(items)\n"
        "async def _store():\n    return None\n"
        "@router.get('/items')\nasync def items(store=Depends(_store)) -> Item:\n    return Item(name='x')\n"
    )
    assert _api_problems(api) == [
        "line 4: class Item (models go to schemas.py, logic to its module)",
        "line 6: _total() is neither a route nor a dependency of one",
    ]


def _imported_top_level_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(_parsed(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _misplaced_classes(package: Path) -> list[str]:
    """Pydantic models (a `BaseModel` base) outside schemas.py, tables (a `__tablename__`) outside models.py."""
    misplaced = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(_parsed(path)):
            if not isinstance(node, ast.ClassDef):
                continue
            pydantic = any(_called_name(base) == "BaseModel" for base in node.bases)
            table = any(
                isinstance(statement, ast.Assign)
                and any(getattr(t, "id", None) == "__tablename__" for t in statement.targets)
                for statement in node.body
            )
            if (pydantic and path.name != "schemas.py") or (table and path.name != "models.py"):
                misplaced.append(f"{path.relative_to(package.parent)}: {node.name}")
    return misplaced


@pytest.mark.parametrize("package", SERVICES, ids=_ids)
def test_pydantic_models_live_in_schemas_and_tables_in_models(package: Path):
    assert _misplaced_classes(package) == []


@pytest.mark.parametrize("package", SERVICES, ids=_ids)
def test_models_hold_tables_and_schemas_hold_pydantic_models(package: Path):
    assert not (package / "model.py").exists(), "model.py: call it models.py (tables) or schemas.py (Pydantic)"
    models, schemas = package / "models.py", package / "schemas.py"
    if models.exists():
        assert "pydantic" not in _imported_top_level_packages(models), "models.py holds tables, not Pydantic models"
    if schemas.exists():
        assert "sqlalchemy" not in _imported_top_level_packages(schemas), "schemas.py holds Pydantic models, not tables"


def _module_name(package: Path, path: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of the package and the modules of the same package it imports (anywhere in it: a deferred
    import inside a function still makes a circle)."""
    modules = {_module_name(package, path): path for path in package.rglob("*.py") if "migrations" not in path.parts}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(_parsed(path)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the path around it, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[name] = "done"
        path.pop()
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


@pytest.mark.parametrize("package", [*SERVICES, KIT], ids=_ids)
def test_no_import_circles(package: Path):
    circle = _cycle(_import_graph(package))
    assert circle is None, f"import circle: {' -> '.join(circle)}"


def test_the_rule_finds_a_deferred_import_circle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "remote.py").write_text("def run():\n    from .tools import build\n    build()\n")
    (package / "tools.py").write_text("from .remote import run\nfrom . import settings\n")
    (package / "settings.py").write_text("")
    assert _cycle(_import_graph(package)) == ["pkg.remote", "pkg.tools", "pkg.remote"]


def test_the_rule_finds_a_model_and_a_table_outside_their_modules(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "views.py").write_text("from pydantic import BaseModel\nclass Answer(BaseModel):\n    name: str\n")
    (package / "store.py").write_text("class Row(Base):\n    __tablename__ = 'rows'\n")
    (package / "schemas.py").write_text("import pydantic\nclass Fine(pydantic.BaseModel):\n    name: str\n")
    assert _misplaced_classes(package) == ["pkg/store.py: Row", "pkg/views.py: Answer"]
