"""What a member tells the others about itself, carried in its alive messages (at most ``max_meta_size`` bytes).

A DPU's dpfd names the host and PCI address it belongs to, so the host's dpfd can pair with it; ``started`` changes on
every start, so a host can tell a DPU's dpfd that came back after a reboot from one that never went away."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson


class MetaError(ValueError):
    """Metadata that does not decode, or does not fit."""


@dataclass(frozen=True, slots=True)
class MemberMeta:
    role: str  # "host", "dpu" or "controller"
    node: str
    version: str
    started: float  # wall-clock start time of this daemon process
    addresses: dict[str, str] = field(default_factory=dict)  # e.g. {"gossip": "...", "admin": "...", "oob": "..."}
    host: str = ""  # DPUs: the host node this DPU sits in
    pci: str = ""  # DPUs: the PCI address of the DPU in its host

    def encode(self, limit: int = 512) -> bytes:
        data = orjson.dumps({k: v for k, v in asdict(self).items() if v not in ("", {})})
        if len(data) > limit:
            raise MetaError(f"member metadata is {len(data)} bytes, over the {limit}-byte limit")
        return data

    @classmethod
    def decode(cls, data: bytes) -> MemberMeta:
        try:
            raw: Any = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise MetaError(f"member metadata is not JSON: {e}") from None
        if not isinstance(raw, dict):
            raise MetaError("member metadata is not an object")
        try:
            addresses = raw.get("addresses", {})
            if not isinstance(addresses, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in addresses.items()
            ):
                raise MetaError("member metadata: addresses must map names to strings")
            return cls(
                role=_str(raw, "role"),
                node=_str(raw, "node"),
                version=_str(raw, "version"),
                started=float(raw.get("started", 0.0)),
                addresses=dict(addresses),
                host=_str(raw, "host", required=False),
                pci=_str(raw, "pci", required=False),
            )
        except (TypeError, ValueError) as e:
            if isinstance(e, MetaError):
                raise
            raise MetaError(f"member metadata: {e}") from None


def pci_slot(address: str) -> str:
    """A PCI address in any of the spellings in use ("0000-03-00" in DPF's labels and DPU specs, "0000:03:00.0" from
    sysfs) as domain:bus:device in lower case, so a DPU's metadata and a DPU object compare equal."""
    base = address.strip().lower().replace("-", ":")
    if "." in base:
        base = base.rsplit(".", 1)[0]
    return base


def _str(raw: dict[str, Any], key: str, required: bool = True) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str):
        raise MetaError(f"member metadata: {key} must be a string")
    if required and not value:
        raise MetaError(f"member metadata: {key} is missing")
    return value
