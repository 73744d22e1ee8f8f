"""A toy service for the walk-through of docs/adding-a-service.md: its catalogue entry here, the service itself in
`__main__.py` (`python -m tests.support.toy_service`). The repository's catalogue never holds it: a process sees it
when the folder of `catalogue_hook` is on its PYTHONPATH, which adds the entry before any module reads the
catalogue."""

from pathlib import Path

# Only the catalogue here: a process imports this before anything else reads the catalogue (see `install`).
from titanium_common import catalog
from titanium_common.catalog import Service

TOY = Service(
    "toy-service",
    "toy_service",
    8099,
    "TOY_SERVICE_URL",
    prefixes=("/api/toy",),
    pooled_by=("load-balancer", "api-gateway", "ops-mcp"),
    probed=True,
    entry_module="tests.support.toy_service",
)


def install() -> None:
    """Put the toy into this process's catalogue (what `sitecustomize` runs in every process of the walk-through)."""
    catalog.CATALOGUE = catalog.CATALOGUE.with_service(TOY, before="dashboard-ui")


def catalogue_hook(folder: Path) -> Path:
    """A `sitecustomize.py` in `folder` that installs the toy: Python runs it at start-up, before the service's
    own imports, in every process with `folder` on its PYTHONPATH."""
    hook = folder / "sitecustomize.py"
    hook.write_text("from tests.support.toy_service import install\n\ninstall()\n")
    return hook
