"""Resource names and Kubernetes quantities.

Requests and capacities are integer amounts in canonical units: CPU in millicores, memory
in bytes, GPUs and every other extended resource in whole devices. ``parse_quantity``
turns the strings Kubernetes uses ("500m", "4Gi", "1e3") into those integers; it lives
here, not in the operator, because scenario files use the same notation.

No amount is larger than :data:`MAX_AMOUNT` (2**62 canonical units: 4.6e15 cores, 4 EiB of
memory, 4.6e18 devices), far above any real node: int64 arrays hold every amount exactly,
and float64 sums of billions of them stay finite, so a crafted quantity such as ``1e400``
is refused at the edge instead of reaching the snapshot's arrays as infinity.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_CEILING,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Overflow,
    Underflow,
    localcontext,
)
from types import MappingProxyType

CPU = "cpu"
MEMORY = "memory"
GPU = "nvidia.com/gpu"
PODS = "pods"

#: The resources every snapshot tracks, in this order; extended resources follow.
CORE_RESOURCES: tuple[str, ...] = (CPU, MEMORY, GPU)

GIB = 1024**3
#: The largest amount of any resource, in canonical units (see the module docstring).
MAX_AMOUNT = 2**62

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
#: Kubernetes' grammar: a signed decimal number (``1``, ``1.5``, ``1.``, ``.5``) and one
#: suffix: binary SI, decimal SI, or a decimal exponent (``e3``, ``E-2``, ``e+6``).
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?"
    r"(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[mkMGTPE]))?"
)
#: Decimal orders of magnitude beyond which a value is certainly above MAX_AMOUNT, or
#: certainly below one canonical unit, whatever its suffix; in between it is computed.
_LARGEST_ORDER = 40
_SMALLEST_ORDER = -40
_INT64 = 2**63
_SHOWN_CHARS = 60


class QuantityError(ValueError):
    """A resource quantity that Kubernetes would not accept, or beyond :data:`MAX_AMOUNT`."""


def shown(value: object) -> str:
    """``repr(value)`` cut to a length fit for a message (any value, however big)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # ints beyond Python's digit limit, deep nesting
        return f"<{type(value).__name__} too large to show>"
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 3]}..."


def parse_quantity(resource: str, value: object) -> int:
    """Return ``value`` of ``resource`` in canonical integer units.

    CPU comes back in millicores (``"1.5"`` -> 1500), everything else in base units
    rounded up, as the API server rounds requests. Raises :class:`QuantityError`, naming
    the resource and the value, for anything but a string in Kubernetes' quantity notation
    or a finite number, and for negative amounts or amounts above :data:`MAX_AMOUNT`.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"{resource}: {shown(value)} is not a quantity")
    if isinstance(value, int):
        if value < 0:
            raise QuantityError(f"{resource}: {shown(value)} is negative")
        if value > MAX_AMOUNT:
            raise _too_large(resource, value)
        digits, amount = 19, Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{resource}: {shown(value)} is not finite")
        # The shortest repr: 0.1 means 0.1, not the binary 0.1000000000000000055...
        digits, amount = _exact_amount(resource, repr(value), value)
    else:
        digits, amount = _exact_amount(resource, value.strip(), value)
    with localcontext(_exact_context(digits)):
        if resource == CPU:
            amount *= 1000
        canonical = int(amount.to_integral_value(rounding=ROUND_CEILING))
    if canonical > MAX_AMOUNT:
        raise _too_large(resource, value)
    return canonical


def _exact_context(digits: int) -> Context:
    """Arithmetic on numbers of up to ``digits`` digits and at most 10**40 that never rounds."""
    return Context(
        prec=digits + 2 * _LARGEST_ORDER,
        Emax=MAX_EMAX,
        Emin=MIN_EMIN,
        traps=[Inexact, InvalidOperation, Overflow, Underflow],
    )


def _too_large(resource: str, value: object) -> QuantityError:
    unit = {CPU: "millicores", MEMORY: "bytes"}.get(resource, "units")
    return QuantityError(f"{resource}: {shown(value)} is above the largest amount, 2**62 {unit}")


def _exact_amount(resource: str, text: str, value: object) -> tuple[int, Decimal]:
    """How many digits quantity ``text`` has, and its exact value in its own unit."""
    match = _QUANTITY.fullmatch(text)
    if match is None or not (match["whole"] or match["fraction"]):
        raise QuantityError(f"{resource}: {shown(value)} is not a quantity")
    whole, fraction = match["whole"], match["fraction"] or ""
    exponent = _exponent(resource, value, match["exponent"])
    significant = whole.lstrip("0")
    if not (significant or fraction.strip("0")):
        return 1, Decimal(0)
    if match["sign"] == "-":
        raise QuantityError(f"{resource}: {shown(value)} is negative")
    # The decimal order of the leading digit decides before any big arithmetic is done.
    if significant:
        order = len(significant) - 1 + exponent
    else:
        order = exponent - (len(fraction) - len(fraction.lstrip("0"))) - 1
    if order > _LARGEST_ORDER:
        raise _too_large(resource, value)
    if order < _SMALLEST_ORDER:
        return 1, Decimal(1).scaleb(_SMALLEST_ORDER)  # positive, below any unit: rounds up to 1
    digits = len(whole) + len(fraction)
    with localcontext(_exact_context(digits)):
        number = Decimal(f"{whole or 0}.{fraction or 0}").scaleb(exponent)
        return digits, number * _SUFFIXES[match["suffix"] or ""]


def _exponent(resource: str, value: object, group: str | None) -> int:
    """The decimal exponent of ``1e3``-style quantities; Kubernetes reads it as an int64."""
    if group is None:
        return 0
    digits = group[1:].lstrip("+-").lstrip("0")
    if len(digits) > len(str(_INT64)):
        raise QuantityError(f"{resource}: {shown(value)} has an exponent out of range")
    exponent = int(group[1:])
    if not -_INT64 <= exponent < _INT64:
        raise QuantityError(f"{resource}: {shown(value)} has an exponent out of range")
    return exponent


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
