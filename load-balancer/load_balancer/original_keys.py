"""The original system's /stats keys, kept beside Titanium's own so that its dashboard page and operators' `jq`
one-liners work unchanged. They read `load-balancer` and `api-gateway` (Titanium uses the same names) and `auth`,
`user_service`, `blog_service`, `database` and `cache`, which are built here as compact entries from what the
fan-out found. Each carries `alias_of`, the entry it repeats, so that Titanium's own readers can skip it."""

from typing import Any

# The original system's key → Titanium's service.
SERVICE_ALIASES = {"auth": "auth-service", "user_service": "user-service", "blog_service": "blog-service"}
# What the original system's entries held beside `service_status`.
_KEPT_FIELDS = ("error", "degraded_reasons", "post_count")
_DOWN = ("offline", "timeout")


def _service(name: str, entry: dict[str, Any] | None) -> dict[str, Any]:
    if entry is None:
        return {"service_status": "offline", "error": f"{name} is not configured", "alias_of": name}
    alias = {"service_status": entry.get("service_status", "offline"), "alias_of": name}
    alias.update({field: entry[field] for field in _KEPT_FIELDS if field in entry})
    return alias


def _user_part(user: dict[str, Any] | None, field: str) -> dict[str, Any]:
    """user-service's `db` or `cache` object copied up, `status: "healthy"` when it answers (the original system's word
    for Titanium's "ok"); any other status is kept as user-service gave it."""
    alias_of = f"user-service.{field}"
    if user is None or user.get("service_status") in _DOWN:
        reason = (user or {}).get("error") or "no answer"
        return {"status": "unknown", "error": f"user-service did not answer: {reason}", "alias_of": alias_of}
    part = user.get(field)
    if not isinstance(part, dict):
        return {"status": "unknown", "error": f"user-service reports no {field}", "alias_of": alias_of}
    return part | {
        "status": "healthy" if part.get("status") == "ok" else part.get("status", "unknown"),
        "alias_of": alias_of,
    }


def original_keys(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The original system's entries, from the fan-out's entries by Titanium's service names."""
    found = {key: _service(name, services.get(name)) for key, name in SERVICE_ALIASES.items()}
    user = services.get("user-service")
    database, cache = _user_part(user, "db"), _user_part(user, "cache")
    # The original system's user_service entry held its database and cache too.
    found["user_service"] |= {
        "database": {k: v for k, v in database.items() if k != "alias_of"},
        "cache": {k: v for k, v in cache.items() if k != "alias_of"},
    }
    return found | {"database": database, "cache": cache}
