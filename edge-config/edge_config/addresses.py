"""Which device addresses edge-config may connect to, and which address a request really came from.

A device config names an address and ports that edge-config then connects to (probes, reloads, its local config):
without a policy that is a way to reach anything edge-config can reach (the suite's own services, a cloud's
metadata endpoint, ports on the host). Refused unless `DEVICE_ALLOWED_CIDRS` admits them: loopback, link-local
(169.254.169.254, the usual metadata address, is one) and other metadata addresses, and the hosts of the suite's
own services. Never admitted: unspecified, multicast and broadcast addresses, and the suite's own service
endpoints (host and port) whatever the allow-list says.
"""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import urlsplit

log = logging.getLogger("edge_config.addresses")

IP = IPv4Address | IPv6Address
# Cloud metadata endpoints outside the link-local ranges (AWS IPv6, Alibaba Cloud).
METADATA = (ip_network("fd00:ec2::254/128"), ip_network("100.100.100.200/32"))
LOOPBACK_CIDRS = "127.0.0.0/8,::1/128"


def parse_ip(value: str) -> IP:
    """An address, with an IPv4-mapped IPv6 address (::ffff:127.0.0.1) read as the IPv4 address it is."""
    address = ip_address(value.strip())
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_cidrs(value: str) -> list:
    try:
        return [ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise ValueError(f"not a comma-separated list of CIDRs: {value!r} ({exc})") from None


def kubernetes_refusal(ip: str) -> str | None:
    """Why the Kubernetes API would refuse `ip` in an Endpoints object (loopback, link-local, unspecified)."""
    address = parse_ip(ip)
    if address.is_loopback:
        return f"{ip} is a loopback address, which Kubernetes Endpoints cannot hold"
    if address.is_link_local:
        return f"{ip} is a link-local address, which Kubernetes Endpoints cannot hold"
    if address.is_unspecified or address.is_multicast:
        return f"{ip} cannot be an endpoint address"
    return None


class AddressPolicy:
    def __init__(self, allowed: Iterable = (), suite_endpoints: Iterable[tuple[IP, int]] = ()) -> None:
        self.allowed = list(allowed)
        self.suite_endpoints = set(suite_endpoints)
        self.suite_hosts = {host for host, _ in self.suite_endpoints}

    def admits(self, address: IP) -> bool:
        return any(address.version == net.version and address in net for net in self.allowed)

    def refusal(self, ip: str, port: int | None = None) -> str | None:
        """None if edge-config may connect to `ip` (and `port`), else why not."""
        try:
            address = parse_ip(ip)
        except ValueError:
            return f"{ip[:60]!r} is not an IP address"
        if address.is_unspecified or address.is_multicast or address == IPv4Address("255.255.255.255"):
            return f"{ip} is not a device address (unspecified, multicast or broadcast)"
        if port is not None and (address, port) in self.suite_endpoints:
            return f"{ip} port {port} is one of the suite's own services"
        if self.admits(address):
            return None
        if address.is_loopback:
            kind = "a loopback address"
        elif address.is_link_local or any(address.version == net.version and address in net for net in METADATA):
            kind = "a link-local or cloud metadata address"
        elif address in self.suite_hosts:
            kind = "an address of the suite's own services"
        else:
            return None
        return f"{ip} is {kind}, refused unless DEVICE_ALLOWED_CIDRS admits it"

    def check(self, ip: str | None, *ports: int) -> str | None:
        """The first refusal for a device's address and its ports (None: all allowed, or no address)."""
        if not ip:
            return None
        for port in ports or (None,):
            refusal = self.refusal(ip, port)
            if refusal is not None:
                return refusal
        return None


async def _resolve(host: str, port: int) -> set[IP]:
    with contextlib.suppress(ValueError):
        return {parse_ip(host)}
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        log.warning("cannot resolve the suite's own host %s (not refused by name): %s", host, exc)
        return set()
    return {parse_ip(info[4][0]) for info in infos}


async def suite_endpoints(urls: Iterable[str]) -> set[tuple[IP, int]]:
    """The (address, port) pairs the suite's own services listen on, host names resolved once at start-up."""
    endpoints: set[tuple[IP, int]] = set()
    for url in urls:
        parts = urlsplit(url.strip())
        if not parts.hostname:
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        endpoints |= {(address, port) for address in await _resolve(parts.hostname, port)}
    return endpoints
