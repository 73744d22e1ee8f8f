"""Where each service listens by default, and the addresses the others reach it at on one machine (`make run`,
tests), from the catalogue. Every settings class takes its defaults from here; a deployment sets the real addresses
(Compose and the manifests name services by host)."""

from collections.abc import Callable
from typing import ClassVar

from pydantic import Field, create_model

from .catalog import CATALOGUE, Catalogue, Service
from .settings import ServiceSettings, split_list

DEFAULT_PORTS: dict[str, int] = CATALOGUE.default_ports()


def local_url(service: str, catalogue: Catalogue = CATALOGUE) -> str:
    """The default address of `service` on this machine."""
    return f"http://127.0.0.1:{catalogue.get(service).port}"


def replicas_of(service: str) -> str:
    """The meaning of a setting that lists where `service` is (its settings table says it)."""
    return (
        f"Where {service} is: its replicas' URLs, comma-separated; a host name stands for every address it resolves to."
    )


class ServiceAddresses(ServiceSettings):
    """The addresses of the services a caller holds a pool over; `service_addresses(caller)` makes the subclass
    with one URL setting per service."""

    addressed: ClassVar[tuple[Service, ...]] = ()

    def service_replicas(self) -> dict[str, list[str]]:
        """Each addressed service's replicas by name: its URL setting, comma-separated (or a list already)."""
        replicas = {}
        for service in self.addressed:
            value = getattr(self, service.url_field)
            urls = split_list(value) if isinstance(value, str) else value
            replicas[service.name] = [url.rstrip("/") for url in urls]
        return replicas


def service_addresses(
    caller: str, catalogue: Catalogue = CATALOGUE, meaning: Callable[[str], str] = replicas_of
) -> type[ServiceAddresses]:
    """A settings base with the URL setting (`AUTH_SERVICE_URL`, `GATEWAY_URLS`, ...) of every service `caller`
    holds a pool over, each defaulting to its local address and described by `meaning(service)`; a settings class
    takes it as a second base."""
    services = catalogue.pooled_by(caller)
    fields = {
        service.url_field: (
            str,
            Field(default=local_url(service.name, catalogue), description=meaning(service.name)),
        )
        for service in services
    }
    name = "".join(part.title() for part in caller.split("-")) + "Addresses"
    addresses = create_model(name, __base__=ServiceAddresses, __module__=__name__, **fields)
    addresses.addressed = services
    return addresses
