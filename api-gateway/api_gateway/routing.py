"""Longest-prefix routing on whole path segments; nothing is rewritten."""

from collections.abc import Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class RouteTable(Generic[T]):
    def __init__(self, routes: Mapping[str, T]) -> None:
        # Longest first, so that /api/users/x picks /api/users over a shorter /api prefix.
        self._routes = sorted(((p.rstrip("/"), target) for p, target in routes.items()), key=lambda r: -len(r[0]))

    def match(self, path: str) -> T | None:
        """The target for `path`, or None. `/internal/*` is never routed, whatever the table says."""
        if path == "/internal" or path.startswith("/internal/"):
            return None
        for prefix, target in self._routes:
            if path == prefix or path.startswith(prefix + "/"):
                return target
        return None
