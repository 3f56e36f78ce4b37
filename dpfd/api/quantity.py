"""Kubernetes value syntaxes: resource quantities, int-or-percent values and Go durations."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# The exact grammar of resource.Quantity, as controller-gen writes it into CRD schemas.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY_RE = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}  # fmt: skip
_EXPONENT_RE = re.compile(r"^[eE]([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))$")

# metav1.Duration as DPF constrains it (no ns/us units).
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600)}


def parse_quantity(value: str | int) -> Decimal:
    """The numeric value of a Kubernetes quantity ("16Gi", "500m", "2", 4); ValueError if malformed."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Decimal(value)
    m = _QUANTITY_RE.match(value)
    if m is None:
        raise ValueError(f'{value!r} is not a quantity (expected e.g. "16Gi", "500m" or "2")')
    number, suffix = Decimal(m.group(1)), m.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    e = _EXPONENT_RE.match(suffix)
    if e is not None:
        try:
            return number * (Decimal(10) ** Decimal(e.group(1)))
        except InvalidOperation as exc:  # an exponent too large to represent
            raise ValueError(f"{value!r} is not a quantity: exponent out of range") from exc
    raise ValueError(f"{value!r} is not a quantity: unknown suffix {suffix!r}")


def parse_duration(value: str) -> Decimal:
    """Seconds in a Go duration such as "1h30m" or "600s"; ValueError if it does not match DPF's pattern."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f'{value!r} is not a duration (expected e.g. "1h", "30m", "1h30m")')
    return sum((Decimal(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART_RE.findall(value)), Decimal(0))


def scaled_int_or_percent(value: int | str, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" as N% of total; ValueError otherwise."""
    if isinstance(value, int):
        return value
    if not value.endswith("%") or not value[:-1].isdigit():
        raise ValueError(f"{value!r} is neither an integer nor a percentage")
    scaled = Decimal(int(value[:-1])) * total / 100
    return int(scaled.to_integral_value(rounding="ROUND_CEILING" if round_up else "ROUND_FLOOR"))
