"""Who may call what. Through the gateway (`/api/edge/*`) anyone may read and only an admin may change anything,
reload a device, ask a device for its local config or touch the cluster. On the device-facing root paths (this
service's own port, where exporters talk) a device may fetch its config and register or update itself without a
token, but only from an address the outbound policy admits; everything else there needs the admin token."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from titanium_common.auth_client import Identity, bearer_token
from titanium_common.deps import VerifierDep, admin_user, from_state

from .addresses import IP, AddressPolicy, parse_ip

GATEWAY_PREFIX = "/api/edge"


@dataclass(frozen=True)
class Caller:
    """An admin (`identity`) or an anonymous device at `source`; `device_facing`: called on the root paths."""

    identity: Identity | None
    source: IP | None
    device_facing: bool


PolicyDep = Annotated[AddressPolicy, Depends(from_state("policy"))]


def _device_facing(request: Request) -> bool:
    path = request.url.path
    return not (path == GATEWAY_PREFIX or path.startswith(GATEWAY_PREFIX + "/"))


def _source(request: Request) -> IP | None:
    """The connection's source address; behind a proxy that uvicorn trusts (`FORWARDED_ALLOW_IPS`, uvicorn's own
    setting, 127.0.0.1 by default), the right-most address of X-Forwarded-For that is not such a proxy."""
    try:
        return parse_ip(request.client.host) if request.client else None
    except ValueError:
        return None


async def _reader(request: Request, verifier: VerifierDep) -> Identity | None:
    """Reads: open through the gateway, admin-only on the device-facing paths."""
    if _device_facing(request):
        return await admin_user(request, verifier)
    return None


async def _device_or_admin(request: Request, verifier: VerifierDep, policy: PolicyDep) -> Caller:
    """GET and PUT /config/{id}: an admin anywhere; a device itself, without a token, on the root paths from an
    address the policy admits; through the gateway a read is open and a write needs the admin token."""
    device_facing = _device_facing(request)
    source = _source(request)
    if not device_facing:
        if request.method == "GET":
            return Caller(None, source, device_facing)
        return Caller(await admin_user(request, verifier), source, device_facing)
    if bearer_token(request) is not None:
        return Caller(await admin_user(request, verifier), source, device_facing)
    refusal = "the connection's address is unknown" if source is None else policy.refusal(str(source))
    if refusal is not None:
        raise HTTPException(
            401, f"a device may call without a token only from an admitted address: {refusal}; else send an admin"
            " token", headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    return Caller(None, source, device_facing)


Reader = Annotated[Identity | None, Depends(_reader)]
DeviceOrAdmin = Annotated[Caller, Depends(_device_or_admin)]
