"""Longest-prefix routing on whole path segments; nothing is rewritten."""

from collections.abc import Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class RouteTable(Generic[T]):
    def __init__(self, routes: Mapping[str, T]) -> None:
        self._routes = {prefix.rstrip("/"): target for prefix, target in routes.items()}
        self._depth = max((p.count("/") for p in self._routes), default=0)

    def match(self, path: str) -> T | None:
        """The target for `path`, or None. `/internal/*` is never routed, whatever the table says."""
        if path == "/internal" or path.startswith("/internal/"):
            return None
        # Try the path cut after its first `depth` segments, then shorter and shorter: the longest prefix wins,
        # in a few dictionary lookups however long the table is.
        candidate = "/".join(path.split("/", self._depth + 1)[: self._depth + 1])
        while candidate:
            if (target := self._routes.get(candidate)) is not None:
                return target
            candidate = candidate.rpartition("/")[0]
        return None
