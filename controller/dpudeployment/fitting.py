"""Resource fitting: the services' resourceRequirements summed must fit the flavor's dpuResources less its
systemReservedResources (DPF's verifyResourceFitting). A flavor without dpuResources fits anything."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from dpfd.api.quantity import parse_quantity

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def format_quantity(value: Decimal) -> str:
    """A short Kubernetes spelling of `value`: 2Gi, 3, 500m."""
    if value == value.to_integral_value():
        n = int(value)
        for suffix, size in _BINARY:
            if n and n % size == 0:
                return f"{n // size}{suffix}"
        return str(n)
    milli = value * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return str(value)


def _sum(lists: Iterable[Mapping[str, str | int]]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for resources in lists:
        for name, quantity in resources.items():
            total[name] = total.get(name, Decimal(0)) + parse_quantity(quantity)
    return total


def allocatable(
    dpu_resources: Mapping[str, str | int] | None, reserved: Mapping[str, str | int] | None
) -> dict[str, Decimal] | None:
    """What services may use on each DPU; None when the flavor does not say (no limit)."""
    if dpu_resources is None:
        return None
    out = {name: parse_quantity(q) for name, q in dpu_resources.items()}
    for name, q in (reserved or {}).items():
        out[name] = out.get(name, Decimal(0)) - parse_quantity(q)
    return out


def missing_resources(
    dpu_resources: Mapping[str, str | int] | None,
    reserved: Mapping[str, str | int] | None,
    requirements: Iterable[Mapping[str, str | int]],
) -> dict[str, Decimal]:
    """Per resource, how much more the services need than the flavor leaves them (empty: they fit). A resource
    the flavor does not list counts as none available."""
    available = allocatable(dpu_resources, reserved)
    if available is None:
        return {}
    wanted = _sum(requirements)
    return {
        name: amount - available.get(name, Decimal(0))
        for name, amount in sorted(wanted.items())
        if amount > available.get(name, Decimal(0))
    }


def fitting_problem(missing: Mapping[str, Decimal]) -> str:
    """The ResourceFittingReady message naming what does not fit; "" when everything fits."""
    if not missing:
        return ""
    needed = ", ".join(f"{name}={format_quantity(amount)}" for name, amount in missing.items())
    return (
        "there are not enough resources for DPUServices to fit in this DPUDeployment: "
        f"Additional resources needed: {needed}"
    )
