"""Container health check: exit 0 when this container's service answers `GET /health` with 200, else 1.

The image's HEALTHCHECK runs `python -m titanium_common.healthcheck` (slim images have no curl); Compose asks
`python -m titanium_common.healthcheck /ready` instead, so that "healthy" means ready to serve. The port is `PORT`
when set (Compose and the manifests set it), else the default of the service named by `SERVICE`.
"""

import os
import socket
import sys

TIMEOUT_S = 3.0


def default_port(service: str) -> int:
    """The port a service listens on when `PORT` is unset: its settings class's default."""
    # Imported only here: pydantic costs 0.4 s of CPU, and Compose runs this check in every container every few
    # seconds with PORT set.
    import importlib
    from importlib.metadata import entry_points

    from .settings import ServiceSettings

    scripts = entry_points(group="console_scripts", name=service)
    if not scripts:
        raise LookupError(f"no installed service named {service!r}")
    package = next(iter(scripts)).module.partition(".")[0]
    module = importlib.import_module(f"{package}.settings")
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, ServiceSettings)
            and value.model_fields["service_name"].default == service
        ):
            return value.model_fields["port"].default
    raise LookupError(f"{package}.settings has no settings class for {service!r}")


def check(port: int, path: str = "/health") -> str | None:
    """None when healthy, else why not. A bare HTTP/1.0 request on a socket: Compose runs this in every container
    every few seconds, and urllib alone would triple the check's CPU time."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as connection:
            connection.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            status_line = connection.makefile("rb").readline(256).decode("latin-1")
    except OSError as exc:
        return f"{path} on port {port}: {exc}"
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        return f"{path} answered no HTTP status line: {status_line!r}"
    return None if parts[1] == "200" else f"{path} answered {parts[1]}"


def main(argv: list[str]) -> int:
    path = argv[0] if argv else "/health"
    port = int(os.environ.get("PORT") or default_port(os.environ.get("SERVICE", "")))
    problem = check(port, path)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
