"""Resource names and Kubernetes quantities.

Requests and capacities are integer amounts in canonical units: CPU in millicores, memory
in bytes, GPUs and every other extended resource in whole devices. ``parse_quantity``
turns the strings Kubernetes uses ("500m", "4Gi", "1e3") into those integers; it lives
here, not in the operator, because scenario files use the same notation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

CPU = "cpu"
MEMORY = "memory"
GPU = "nvidia.com/gpu"
PODS = "pods"

#: The resources every snapshot tracks, in this order; extended resources follow.
CORE_RESOURCES: tuple[str, ...] = (CPU, MEMORY, GPU)

GIB = 1024**3

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


class QuantityError(ValueError):
    """A resource quantity string that Kubernetes would not accept."""


def parse_quantity(resource: str, value: str | int | float) -> int:
    """Return ``value`` of ``resource`` in canonical integer units.

    CPU comes back in millicores (``"1.5"`` -> 1500), everything else in base units
    rounded up, as the API server rounds requests.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{resource}: {value!r} is not a quantity")
    if isinstance(value, int | float):
        amount = Decimal(str(value))
    else:
        match = _QUANTITY.match(value.strip())
        if match is None:
            raise QuantityError(f"{resource}: {value!r} is not a quantity")
        try:
            amount = Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
        except InvalidOperation as exc:
            raise QuantityError(f"{resource}: {value!r} is not a quantity") from exc
    if not amount.is_finite():
        raise QuantityError(f"{resource}: {value!r} is not finite")
    if amount < 0:
        raise QuantityError(f"{resource}: {value!r} is negative")
    if resource == CPU:
        amount *= 1000
    return int(amount.to_integral_value(rounding="ROUND_CEILING"))


def resource_list(amounts: Mapping[str, int]) -> Mapping[str, int]:
    """Return a read-only copy of ``amounts`` without zero entries."""
    return MappingProxyType({name: int(v) for name, v in amounts.items() if v})


def format_amount(resource: str, amount: float) -> str:
    """Render an amount in canonical units for people: ``4 cpu``, ``32Gi``, ``2``."""
    if resource == CPU:
        return f"{amount / 1000:g}"
    if resource == MEMORY:
        return f"{amount / GIB:g}Gi"
    return f"{amount:g}"
