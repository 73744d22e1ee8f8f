"""Kubernetes resource quantities (`250m`, `1.5`, `512Mi`, `2Gi`, `1e3`) and human-readable sizes."""

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1), "k": Decimal(10**3)}
_DECIMAL |= {"M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15)}
_DECIMAL |= {"E": Decimal(10**18)}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def parse_quantity(value: str | int | float) -> Decimal:
    """A quantity as a plain number (`"2Gi"` → 2147483648, `"250m"` → 0.25); ValueError when malformed."""
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from exc
    suffix = suffix or ""
    return amount * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def cpu_millicores(value: str | int | float) -> float:
    return float(parse_quantity(value) * 1000)


def memory_bytes(value: str | int | float) -> int:
    return int(parse_quantity(value).to_integral_value())


def human_bytes(count: float) -> dict[str, Any]:
    """`{"value": 1.5, "unit": "GiB", "bytes": 1610612736}`: binary units, two decimals."""
    value = float(count)
    unit = _UNITS[0]
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    return {"value": round(value, 2), "unit": unit, "bytes": int(count)}
