"""Every DPF kind: its group, names, model and printer columns. CRDs and validation are driven from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dpfd.api import chains, operator, provisioning, services

VERSION = "v1alpha1"
DPF_GROUPS: frozenset[str] = frozenset({provisioning.GROUP, chains.GROUP, operator.GROUP})


@dataclass(frozen=True)
class PrinterColumn:
    """One additionalPrinterColumn of a CRD version (ours when generating, any CRD's in the emulated API)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""

    def to_crd(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        if self.format:
            out["format"] = self.format
        return out


@dataclass(frozen=True)
class KindInfo:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    model: type[BaseModel]
    printer_columns: tuple[PrinterColumn, ...]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"


_READY = ".status.conditions[?(@.type=='Ready')]"
READY = PrinterColumn("Ready", "string", f"{_READY}.status")
READY_REASON = PrinterColumn("Reason", "string", f"{_READY}.reason")
# The svc kinds show their Ready condition's reason as the phase.
PHASE_FROM_READY = PrinterColumn("Phase", "string", f"{_READY}.reason")
PHASE = PrinterColumn("Phase", "string", ".status.phase")
AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


def _info(group: str, model: type[BaseModel], *columns: PrinterColumn) -> KindInfo:
    kind = model.__name__
    return KindInfo(
        group=group,
        version=VERSION,
        kind=kind,
        plural=kind.lower() + "s",
        singular=kind.lower(),
        short_names=(),  # DPF v24.10 declares no short names
        namespaced=True,
        model=model,
        printer_columns=columns,
    )


_P, _S, _O = provisioning.GROUP, chains.GROUP, operator.GROUP

_ALL = (
    _info(_P, provisioning.BFB, PrinterColumn("File Name", "string", ".spec.fileName"), PHASE, AGE),
    _info(_P, provisioning.DPUFlavor, AGE),
    _info(_P, provisioning.DPUSet, PrinterColumn("Strategy", "string", ".spec.strategy.type"), AGE),
    _info(_P, provisioning.DPU, PrinterColumn("Node", "string", ".spec.nodeName"), READY, PHASE, AGE),
    _info(
        _P,
        provisioning.DPUCluster,
        READY,
        PHASE,
        PrinterColumn("Type", "string", ".spec.type"),
        PrinterColumn("MaxNodes", "integer", ".spec.maxNodes"),
        PrinterColumn("Version", "string", ".spec.version"),
        AGE,
    ),
    _info(_S, services.DPUService, READY, PHASE_FROM_READY, AGE),
    _info(_S, services.DPUDeployment, READY, PHASE_FROM_READY, AGE),
    _info(_S, services.DPUServiceTemplate, READY, PHASE_FROM_READY, AGE),
    _info(_S, services.DPUServiceConfiguration, READY, PHASE_FROM_READY, AGE),
    _info(_S, services.DPUServiceCredentialRequest, READY, PHASE_FROM_READY, AGE),
    _info(
        _S,
        chains.DPUServiceInterface,
        PrinterColumn("IfType", "string", ".spec.template.spec.template.spec.interfaceType"),
        READY,
        PHASE_FROM_READY,
        AGE,
    ),
    _info(_S, chains.DPUServiceChain, READY, PHASE_FROM_READY, AGE),
    _info(_S, chains.DPUServiceIPAM, READY, PHASE_FROM_READY, AGE),
    _info(_S, chains.ServiceInterfaceSet, READY, READY_REASON, AGE),
    _info(
        _S,
        chains.ServiceInterface,
        PrinterColumn("IfType", "string", ".spec.interfaceType"),
        PrinterColumn("Node", "string", ".spec.node"),
        READY,
        READY_REASON,
        AGE,
    ),
    _info(_S, chains.ServiceChainSet, READY, READY_REASON, AGE),
    _info(_S, chains.ServiceChain, PrinterColumn("Node", "string", ".spec.node"), READY, READY_REASON, AGE),
    _info(_O, operator.DPFOperatorConfig, READY, PHASE_FROM_READY, AGE),
)

KINDS: dict[tuple[str, str], KindInfo] = {(i.group, i.kind): i for i in _ALL}


def kind_info(api_version: str, kind: str) -> KindInfo | None:
    """The kind served at `api_version` ("group/version"), or None if DPF has no such kind there."""
    group, _, version = api_version.rpartition("/")
    info = KINDS.get((group, kind))
    return info if info is not None and info.version == version else None


def kinds_in_group(group: str) -> list[str]:
    return sorted(k for g, k in KINDS if g == group)
