"""Longest-prefix routing on whole path segments; nothing is rewritten."""


class RouteTable:
    def __init__(self, routes: dict[str, tuple[str, str]]) -> None:
        # Longest first, so that /api/users/x picks /api/users over a shorter /api prefix.
        self._routes = sorted(((p.rstrip("/"), target) for p, target in routes.items()), key=lambda r: -len(r[0]))

    def match(self, path: str) -> tuple[str, str] | None:
        """(upstream name, base URL) for `path`, or None. `/internal/*` is never routed."""
        if path == "/internal" or path.startswith("/internal/"):
            return None
        for prefix, target in self._routes:
            if path == prefix or path.startswith(prefix + "/"):
                return target
        return None
