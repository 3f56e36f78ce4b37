#!/usr/bin/env python3
"""Generate docs/api-reference.md from the models of every DPF kind in dpfd/api/.

The kinds are the CRD generator's (`dpfd.api.registry.KINDS`) and each field's type, default and schema
constraints come from the same functions the CRDs in deploy/crds/ are built with (`dpfd.api.crds.type_schema`,
`dpfd.api.defaults.crd_default`), so the reference says what the API server enforces. Immutability is found by
asking `dpfd.api.immutability.update_problems` about every spec field. What lives in code rather than in data —
the cross-field rules of each model's `rules()`, the webhook defaults, and which conditions the daemons and the
controller write — is described in the tables below; tests/unit/docs/ checks those tables against the code.

  .venv/bin/python scripts/gen-api-docs.py            # write docs/api-reference.md
  .venv/bin/python scripts/gen-api-docs.py --check    # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from controller import reachability
from controller.chains import desired as chain_status
from controller.chains.family import CHAINS, INTERFACES
from controller.credentials import conditions as cred_conditions
from controller.credentials import resources as cred
from controller.dpudeployment import names as dd
from controller.ipam import selection as ipam_status
from controller.operatorconfig import status as opc_status
from controller.reconcilers import bfb_status
from controller.services import status as svc_status
from dpfd.api import chains, conditions, intents, meta, operator, provisioning, services
from dpfd.api.base import DPFModel, K8sSchema
from dpfd.api.crds import type_schema
from dpfd.api.defaults import NO_DEFAULT, crd_default
from dpfd.api.immutability import update_problems
from dpfd.api.quantity import QUANTITY_PATTERN
from dpfd.api.registry import KINDS, KindInfo
from dpfd.api.typewalk import is_list, is_literal, is_map, item_type, model_class, unwrap
from dpfd.dpu.flows import reconciler as flows
from dpfd.dpu.ovs import reconciler as ports
from dpfd.host.bfb.errors import FetchReason
from dpfd.host.dms.errors import DmsError
from dpfd.host.provisioning import machine
from dpfd.host.provisioning import ownership as dpu_ownership
from dpfd.host.provisioning import phases as P

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "api-reference.md"
REGENERATE = ".venv/bin/python scripts/gen-api-docs.py"

# ------------------------------------------------------------------------------------------- what code says

_LABELS = "keys and values of `{}` are valid Kubernetes label keys and values"

# What each model's own rules() enforces, in words (paths relative to the model). Every model with a rules() of
# its own must be here: the docs test fails otherwise.
RULES: dict[type[BaseModel], tuple[str, ...]] = {
    meta.DPFObject: ("`metadata.name` or `metadata.generateName` is set",),
    meta.ObjectMeta: (
        "`name` is a DNS-1123 subdomain (at most 253 characters), `namespace` a DNS-1123 label (at most 63)",
        _LABELS.format("labels") + "; `annotations` keys are qualified names",
    ),
    meta.TemplateMeta: (_LABELS.format("labels") + "; `annotations` keys are qualified names",),
    meta.LabelSelector: (_LABELS.format("matchLabels"),),
    meta.LabelSelectorRequirement: (
        "`key` is a qualified name",
        "`values` is required for `In` and `NotIn` and forbidden for `Exists` and `DoesNotExist`",
    ),
    meta.NodeSelectorRequirement: (
        "`values` is required for `In` and `NotIn`, forbidden for `Exists` and `DoesNotExist`, "
        "and exactly one integer for `Gt` and `Lt`",
    ),
    meta.Taint: ("`key` is a qualified name",),
    provisioning.ConfigFile: ("`path` is absolute and has no `..` segment",),
    provisioning.DPUFlavorSpec: (
        '`nvconfig` has at most one entry (it applies to all devices), whose `device` may only be `"*"`',
        "`systemReservedResources` is set only with `dpuResources`, names only resources listed there, "
        "and none of its values exceeds the one in `dpuResources`",
    ),
    provisioning.NodeEffect: (
        "exactly one of `noEffect` (true), `taint`, `customLabel` (non-empty), `drain` is set",
        _LABELS.format("customLabel"),
    ),
    provisioning.RollingUpdateDPU: ('`maxUnavailable` is an integer > 0 or a percentage from "1%" to "100%"',),
    provisioning.ClusterSpec: (_LABELS.format("nodeLabels"),),
    provisioning.DPUSetSpec: (_LABELS.format("dpuSelector"),),
    provisioning.K8sCluster: (_LABELS.format("nodeLabels"),),
    provisioning.KeepalivedSpec: ("`vip` is an IP address",),
    provisioning.DPUClusterSpec: (
        "`kubeconfig` is a valid Secret name (DNS-1123 subdomain)",
        '`kubeconfig` is required when `type` is `"static"`',
    ),
    chains.IPAM: (_LABELS.format("matchLabels"),),
    chains.ServiceIfc: (_LABELS.format("matchLabels"),),
    chains.ServiceInterfaceSpec: (
        "the block named by `interfaceType` (`physical`, `vlan`, `vf`, `pf` or `service`) is set; `ovn` needs none",
    ),
    chains.IPV4Network: (
        '`network` is an IPv4 network in CIDR notation ("10.0.0.0/16") and `prefixSize` is longer than its prefix',
        "`gatewayIndex` is less than the number of addresses in a `/prefixSize` subnet; "
        "it is required when `defaultGateway` is true",
        "`exclusions` are IPv4 addresses inside `network`",
        "`allocations` give each node a distinct `/prefixSize` subnet of `network`",
        "`routes[].dst` are IPv4 networks in CIDR notation, and not the default route when `defaultGateway` is true",
    ),
    chains.IPV4Subnet: (
        "`subnet` is an IPv4 network in CIDR notation",
        "`gateway` is an address inside `subnet`, not its network or broadcast address (for prefixes up to /30)",
        "`perNodeIPCount` is at most the number of addresses in `subnet`",
        "`routes[].dst` are IPv4 networks in CIDR notation, and not the default route when `defaultGateway` is true",
    ),
    chains.DPUServiceIPAMSpec: ("exactly one of `ipv4Network`, `ipv4Subnet` is set",),
    services.RollingUpdateDaemonSet: (
        '`maxUnavailable` and `maxSurge` are non-negative integers or percentages from "0%" to "100%"',
        "`maxUnavailable` may not be 0 when `maxSurge` is 0 or absent",
    ),
    services.ServiceDaemonSetValues: (_LABELS.format("labels"),),
    services.DPUServiceSpec: ("`serviceID` is required when `interfaces` is set",),
    services.ServiceConfigurationDaemonSet: (_LABELS.format("labels"),),
    services.DPUServiceConfigurationSpec: ("`interfaces[].name` are unique",),
    services.DPUs: ("`dpuSets[].nameSuffix` are unique",),
    services.DPUDeploymentPort: ("exactly one of `service`, `serviceInterface` is set",),
    services.DPUDeploymentSpec: ("every `serviceChains[].ports[].service.name` is a key of `services`",),
    services.DPUServiceCredentialRequestSpec: ("`duration` is at least 10 minutes",),
    operator.DPFOperatorConfigSpec: ("`imagePullSecrets` are valid Secret names (DNS-1123 subdomains)",),
}

# Update rules that are not plain immutability (which is found by probing `update_problems`).
UPDATE_RULES: dict[str, tuple[str, ...]] = {
    "DPUServiceIPAM": (
        "`spec.ipv4Network.network` and `spec.ipv4Subnet.subnet` may grow but not shrink: the new network must "
        "contain the old one (switching between `ipv4Network` and `ipv4Subnet` replaces the pool and is allowed)",
    ),
}

# What DPF's mutating webhooks fill in on create (dpfd.api.defaults), beyond the schema defaults in the tables.
WEBHOOK_DEFAULTS: dict[str, tuple[tuple[str, str], ...]] = {
    "BFB": (("spec.fileName", "`<namespace>-<name>.bfb` when absent"),),
    "DPUSet": (
        ("spec.strategy", '`{"type": "Recreate"}` when absent'),
        ("spec.strategy.rollingUpdate.maxUnavailable", "`1` when `type` is `RollingUpdate` and it is absent"),
    ),
}


@dataclass(frozen=True)
class ConditionDoc:
    type: str
    writer: str
    meaning: str
    reasons: tuple[str, ...]


def _dms_reasons() -> tuple[str, ...]:
    # As dpfd.host.provisioning.wiring names them: DmsInstallError -> DMSInstallError.
    return tuple(sorted("DMS" + cls.__name__.removeprefix("Dms") for cls in DmsError.__subclasses__()))


_FETCH_REASONS = tuple(r.value for r in FetchReason)
_HOST = "host dpfd"
_LEADER = "controller (leader)"
_FENCED = (dpu_ownership.REASON_LOCK_LOST,)  # the steps that check the DPU's lock before touching it
_DPU_PHASE_REASONS: dict[str, tuple[str, ...]] = {
    P.INITIALIZING: (P.REASON_DPU_NOT_FOUND, P.REASON_OOB_BRIDGE, P.REASON_WAITING),
    P.NODE_EFFECT: (P.REASON_IN_PROGRESS,),
    P.PENDING: (P.REASON_WAITING, P.REASON_IN_PROGRESS, *_FETCH_REASONS),
    P.DMS_DEPLOYMENT: (P.REASON_DMS_UNKNOWN, "DMSNotReady", P.REASON_IN_PROGRESS),
    P.OS_INSTALLING: (P.REASON_IN_PROGRESS, "BFCfgInvalid", *_dms_reasons(), *_FENCED),
    P.REBOOTING: (
        P.REASON_IN_PROGRESS,
        P.REASON_WAITING,
        P.REASON_RETRYING,
        "HostRebootFailed",
        "HostRebootTimeout",
        *_dms_reasons(),
        *_FENCED,
    ),
    P.HOST_NETWORK: (P.REASON_IN_PROGRESS, "HostNetworkNotReady", *_FENCED),
    P.CLUSTER_CONFIG: (P.REASON_WAITING,),
}
# Reasons of phases.py not tied to one phase above (a drained host holds a DPU in whichever phase it is in).
_ASSIGNED = {r for reasons in _DPU_PHASE_REASONS.values() for r in reasons} | {P.REASON_DONE, P.REASON_INSTALL_FAILED}
_ANY_PHASE = tuple(v for k, v in vars(P).items() if k.startswith("REASON_") and v not in _ASSIGNED)
# Phases whose work runs in the background: an unexpected failure there is reported as `<Phase>Failed`.
_BACKGROUND = (P.PENDING, P.DMS_DEPLOYMENT, P.OS_INSTALLING, P.REBOOTING, P.HOST_NETWORK)


def _dpu_conditions() -> tuple[ConditionDoc, ...]:
    per_phase = tuple(
        ConditionDoc(
            cond,
            _HOST,
            f"the {phase} phase is done",
            (
                P.REASON_DONE,
                *_DPU_PHASE_REASONS[phase],
                *((machine._reason_of(phase),) if phase in _BACKGROUND else ()),
                *_ANY_PHASE,
                machine.REASON_LOCKED,
            ),
        )
        for phase, cond in P.CONDITION_OF_PHASE.items()
    )
    reach = (reachability.REASON_ALIVE, reachability.REASON_FAILED, reachability.REASON_LEFT)
    return (
        *per_phase,
        ConditionDoc(reachability.DPU_DAEMON_REACHABLE, _LEADER, "the DPU's dpfd is alive in gossip", reach),
        ConditionDoc(reachability.HOST_DAEMON_REACHABLE, _LEADER, "the host's dpfd is alive in gossip", reach),
    )


def _fanout_conditions(reconciled: str, ready: str, children: str) -> tuple[ConditionDoc, ...]:
    shared = (chain_status.REASON_SUCCESS, chain_status.REASON_PENDING)
    return (
        ConditionDoc(
            "Ready",
            _LEADER,
            "both conditions below are True (else it has the reason of the first that is not)",
            (chain_status.REASON_SUCCESS,),
        ),
        ConditionDoc(
            reconciled,
            _LEADER,
            "every selected cluster's Nodes are known and their intents written",
            (*shared, chain_status.REASON_ERROR),
        ),
        ConditionDoc(
            ready,
            _LEADER,
            f"every {children} is reported Ready by its DPU's dpfd",
            (*shared, chain_status.REASON_AWAITING_DELETION),
        ),
    )


def _dpu_side_ready(reasons: tuple[str, ...]) -> tuple[ConditionDoc, ...]:
    return (ConditionDoc("Ready", "DPU dpfd (in its report)", "applied on the DPU's OVS", reasons),)


CONDITIONS: dict[str, tuple[ConditionDoc, ...]] = {
    "BFB": (
        ConditionDoc(
            bfb_status.READY,
            _LEADER,
            "every host expected to hold the BFB has downloaded it (from the host dpfds' reports)",
            (
                bfb_status.REASON_DOWNLOADED,
                bfb_status.REASON_INITIALIZING,
                bfb_status.REASON_DOWNLOADING,
                bfb_status.REASON_NO_HOSTS,
                bfb_status.REASON_DELETING,
                bfb_status.REASON_DOWNLOAD_FAILED,
                *_FETCH_REASONS,
            ),
        ),
    ),
    "DPU": _dpu_conditions(),
    "DPUCluster": (
        ConditionDoc(
            "Created",
            _LEADER,
            "`spec.kubeconfig` names the cluster's admin kubeconfig Secret (type kamaji: once Kamaji reports the "
            "TenantControlPlane Ready, its `<name>-admin-kubeconfig`; until then ClusterNotReady, with what is "
            "awaited in the message)",
            ("Created", "EmptyKubeconfig", "ClusterNotReady"),
        ),
        ConditionDoc(
            "Ready",
            _LEADER,
            "the cluster's API server answers the health check",
            ("HealthCheckPassed", "HealthCheckFailed"),
        ),
        ConditionDoc(
            "KeepalivedReady",
            _LEADER,
            "type kamaji with `spec.clusterEndpoint.keepalived`: the keepalived ConfigMap and DaemonSet holding the "
            "VIP are deployed (set once the node port is known)",
            ("Deployed",),
        ),
    ),
    "DPUService": (
        ConditionDoc(
            svc_status.READY,
            _LEADER,
            "every condition below is True (else the first one that is not)",
            (
                svc_status.REASON_SUCCESS,
                svc_status.REASON_PENDING,
                svc_status.REASON_ERROR,
                svc_status.REASON_AWAITING_DELETION,
            ),
        ),
        ConditionDoc(
            svc_status.PREREQS_RECONCILED,
            _LEADER,
            "the DPFOperatorConfig, AppProjects, ArgoCD cluster Secrets, namespaces and pull Secrets are in place",
            (svc_status.REASON_SUCCESS, svc_status.REASON_ERROR),
        ),
        ConditionDoc(
            svc_status.APPS_RECONCILED,
            _LEADER,
            "one ArgoCD Application per DPU cluster is written",
            (svc_status.REASON_SUCCESS, svc_status.REASON_ERROR, svc_status.REASON_AWAITING_DELETION),
        ),
        ConditionDoc(
            svc_status.APPS_READY,
            _LEADER,
            "every Application is Synced and Healthy",
            (svc_status.REASON_SUCCESS, svc_status.REASON_PENDING),
        ),
        ConditionDoc(
            svc_status.INTERFACES_RECONCILED,
            _LEADER,
            "the named DPUServiceInterfaces exist, are of type service and are claimed by this DPUService",
            (svc_status.REASON_SUCCESS, svc_status.REASON_ERROR),
        ),
        ConditionDoc(
            svc_status.ROLLOUT_PROGRESSING,
            _LEADER,
            "beyond DPF, not part of Ready: a spec change still moving across the DPU clusters within the "
            "`svc.dpu.nvidia.com/max-unavailable` budget (True), or done (False)",
            (svc_status.REASON_ROLLING_OUT, svc_status.REASON_COMPLETE),
        ),
    ),
    "DPUDeployment": tuple(
        ConditionDoc(
            t,
            _LEADER,
            "as DPF: the generated objects' state, the prerequisites and the resource fit",
            ("Success", "Pending", "Failure", "AwaitingDeletion"),
        )
        for t in dd.CONDITION_TYPES
    ),
    "DPFOperatorConfig": (
        ConditionDoc(
            opc_status.READY,
            _LEADER,
            "the conditions below are True (else the first that is not, with its reason; `Paused` while "
            "`spec.overrides.paused`; `Error` when there is not exactly one DPFOperatorConfig)",
            (opc_status.REASON_SUCCESS, opc_status.REASON_PENDING, opc_status.REASON_ERROR, opc_status.REASON_PAUSED),
        ),
        ConditionDoc(
            opc_status.IMAGE_PULL_SECRETS_RECONCILED,
            _LEADER,
            "every Secret in `spec.imagePullSecrets` carries `dpu.nvidia.com/image-pull-secret` (others lost it)",
            (opc_status.REASON_SUCCESS, opc_status.REASON_ERROR),
        ),
        ConditionDoc(
            opc_status.SYSTEM_COMPONENTS_RECONCILED,
            _LEADER,
            "the system DPUServices (flannel, multus, sriov-device-plugin, unless disabled) are written",
            (opc_status.REASON_SUCCESS, opc_status.REASON_ERROR),
        ),
        ConditionDoc(
            opc_status.SYSTEM_COMPONENTS_READY,
            _LEADER,
            "each system DPUService is Ready",
            (opc_status.REASON_SUCCESS, opc_status.REASON_PENDING),
        ),
    ),
    "DPUServiceCredentialRequest": (
        ConditionDoc(
            cred.COND_READY,
            _LEADER,
            "the two conditions below are True",
            (cred_conditions.REASON_SUCCESS, cred_conditions.REASON_PENDING),
        ),
        ConditionDoc(
            cred.COND_SERVICE_ACCOUNT,
            _LEADER,
            "the ServiceAccount exists in the target cluster",
            (cred_conditions.REASON_SUCCESS, cred_conditions.REASON_ERROR),
        ),
        ConditionDoc(
            cred.COND_SECRET,
            _LEADER,
            "the Secret holds a token that is not due for renewal",
            (cred_conditions.REASON_SUCCESS, cred_conditions.REASON_ERROR),
        ),
    ),
    "DPUServiceInterface": _fanout_conditions(INTERFACES.cond_reconciled, INTERFACES.cond_ready, "ServiceInterface"),
    "DPUServiceChain": _fanout_conditions(CHAINS.cond_reconciled, CHAINS.cond_ready, "ServiceChain"),
    "ServiceInterfaceSet": _fanout_conditions(
        INTERFACES.set_cond_reconciled, INTERFACES.set_cond_ready, "ServiceInterface"
    ),
    "ServiceChainSet": _fanout_conditions(CHAINS.set_cond_reconciled, CHAINS.set_cond_ready, "ServiceChain"),
    "DPUServiceIPAM": (
        ConditionDoc(
            "Ready",
            _LEADER,
            "the condition below is True (else it has that one's reason)",
            (chain_status.REASON_SUCCESS,),
        ),
        ConditionDoc(
            ipam_status.COND_RECONCILED,
            _LEADER,
            "every selected DPU Node has its range of the pool in etcd",
            (
                chain_status.REASON_SUCCESS,
                chain_status.REASON_PENDING,
                chain_status.REASON_ERROR,
                ipam_status.REASON_EXHAUSTED,
            ),
        ),
    ),
    "ServiceInterface": _dpu_side_ready(
        (
            "PortsReady",
            "NothingToCreate",
            "InvalidSpec",
            "Unsupported",
            "PortConflict",
            "PortError",
            "NoOpenFlowPort",
            "Deleting",
        )
    ),
    "ServiceChain": _dpu_side_ready(("FlowsApplied", "InvalidSpec", "PortsNotReady", "Deleting")),
}

# Phases the daemons report for kinds whose models carry no phase enum.
REPORTED_PHASES: dict[str, tuple[str, ...]] = {
    "ServiceInterface": (ports.PHASE_PENDING, ports.PHASE_READY, ports.PHASE_FAILED, ports.PHASE_DELETING),
    "ServiceChain": (flows.PHASE_PENDING, flows.PHASE_READY, flows.PHASE_FAILED, flows.PHASE_DELETING),
}

# ------------------------------------------------------------------------------------------- reading models

_SCALAR_NAMES: dict[Any, str] = {str: "string", int: "integer", bool: "boolean", float: "number"}


def common_models() -> list[type[BaseModel]]:
    """Kubernetes types documented once, in the order dpfd.api.meta defines them, then metav1.Condition."""
    found = [
        c
        for c in vars(meta).values()
        if isinstance(c, type)
        and issubclass(c, BaseModel)
        and c.__module__ == meta.__name__
        and c is not meta.DPFObject
    ]
    return [*found, conditions.Condition]


_COMMON = set(common_models())


def anchor(name: str) -> str:
    return name.lower()


def type_name(tp: Any) -> str:
    base, metadata = unwrap(tp)
    marker = next((m for m in metadata if isinstance(m, K8sSchema)), None)
    if marker is not None:
        if marker.schema.get("x-kubernetes-int-or-string"):
            return "quantity" if marker.schema.get("pattern") == QUANTITY_PATTERN else "int-or-string"
        return "object (free-form)"
    if is_literal(base):
        return _SCALAR_NAMES.get(type(get_args(base)[0]), "string")
    if base in _SCALAR_NAMES:
        return _SCALAR_NAMES[base]
    if is_list(base):
        return "[]" + type_name(item_type(base))
    if is_map(base):
        value = item_type(base)
        return "map[string]" + ("any" if value is Any else type_name(value))
    model = model_class(base)
    if model is not None:
        return f"[{model.__name__}](#{anchor(model.__name__)})" if model in _COMMON else "object"
    return "any"


def nested_model(tp: Any) -> tuple[type[BaseModel], str] | None:
    """The model beneath a field (itself, its list's items or its map's values) and the path step to it."""
    base, _ = unwrap(tp)
    model = model_class(base)
    if model is not None:
        return model, "."
    if is_list(base) or is_map(base):
        inner = model_class(unwrap(item_type(base))[0])
        if inner is not None:
            return inner, "[]." if is_list(base) else "[<key>]."
    return None


def _bound(low: Any, high: Any, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low}\u2013{high} {unit}".rstrip()  # an en dash
    if low is not None:
        if not unit:
            return f"≥ {low}"
        return "non-empty" if low == 1 else f"at least {low} {unit}"
    return f"≤ {high}" if not unit else f"at most {high} {unit}"


def constraints(schema: dict[str, Any]) -> list[str]:
    """The schema's validation keywords in words."""
    out: list[str] = []
    if "enum" in schema:
        out.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    pattern = schema.get("pattern")
    if pattern is not None and pattern != QUANTITY_PATTERN:  # a quantity says so in its type
        out.append(f"pattern `{pattern}`")
    for low, high, unit in (
        ("minLength", "maxLength", "characters"),
        ("minItems", "maxItems", "items"),
        ("minProperties", "maxProperties", "entries"),
    ):
        if low in schema or high in schema:
            out.append(_bound(schema.get(low), schema.get(high), unit))
    if "minimum" in schema or "maximum" in schema:
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if schema.get("exclusiveMinimum") or schema.get("exclusiveMaximum"):
            parts = []
            if minimum is not None:
                parts.append(f"{'>' if schema.get('exclusiveMinimum') else '≥'} {minimum}")
            if maximum is not None:
                parts.append(f"{'<' if schema.get('exclusiveMaximum') else '≤'} {maximum}")
            out.append(", ".join(parts))
        else:
            out.append(_bound(minimum, maximum, ""))
    for key, label in (("items", "each item"), ("additionalProperties", "each value")):
        inner = schema.get(key)
        if isinstance(inner, dict) and "properties" not in inner:
            out.extend(f"{label}: {c}" for c in constraints(inner))
    return out


def description(schema: dict[str, Any]) -> str:
    for candidate in (schema, schema.get("items"), schema.get("additionalProperties")):
        if isinstance(candidate, dict) and candidate.get("description"):
            return str(candidate["description"])
    return ""


def default_of(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    if issubclass(model, DPFModel):
        value = crd_default(model, name)
        return "" if value is NO_DEFAULT else json.dumps(value)
    # Envelopes and metav1 types: only plain defaults (factories may stamp the time).
    if field.default is PydanticUndefined or field.default is None:
        return ""
    return json.dumps(field.default)


# ------------------------------------------------------------------------------------------- immutability


def _spec_paths(model: type[BaseModel], prefix: str, seen: tuple[type[BaseModel], ...]) -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}"
        yield path
        inner = model_class(unwrap(field.annotation)[0])
        if inner is not None and inner not in seen:
            yield from _spec_paths(inner, path, (*seen, inner))


def _object_with(path: str, value: str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    node = obj
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    if value is not None:
        node[last] = value
    return obj


def immutable_fields(info: KindInfo) -> dict[str, str]:
    """path -> "immutable" or "immutable once set", by asking the update rules about a change of every spec field."""
    spec = model_class(unwrap(info.model.model_fields["spec"].annotation)[0])
    assert spec is not None
    found: dict[str, str] = {}
    for path in _spec_paths(spec, "spec", (spec,)):
        changed = update_problems(info.kind, _object_with(path, "probe-old"), _object_with(path, "probe-new"))
        for problem_path, _ in changed:
            set_later = update_problems(info.kind, _object_with(problem_path, None), _object_with(problem_path, "x"))
            kind = "immutable" if any(p == problem_path for p, _ in set_later) else "immutable once set"
            found[problem_path] = kind
    return found


# ------------------------------------------------------------------------------------------- rendering


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class Row:
    path: str
    type: str
    default: str
    required: bool
    validation: list[str]
    description: str

    def render(self) -> str:
        default = f"`{self.default}`" if self.default else ""
        return (
            f"| `{self.path}` | {cell(self.type)} | {cell(default)} | {'yes' if self.required else ''} | "
            f"{cell('; '.join(self.validation))} | {cell(self.description)} |"
        )


TABLE_HEAD = "| field | type | default | required | validation | description |\n| --- | --- | --- | --- | --- | --- |"


def field_rows(
    model: type[BaseModel], prefix: str, extra: dict[str, list[str]], seen: tuple[type[BaseModel], ...] = ()
) -> Iterator[Row]:
    """One row per field, depth first; common types are linked, not expanded. `extra`: more validation by path."""
    for name, field in model.model_fields.items():
        path = prefix + name
        schema = type_schema(field.annotation, field)
        rules = list(constraints(schema)) + extra.get(path, [])
        yield Row(
            path,
            type_name(field.annotation),
            default_of(model, name, field),
            field.is_required(),
            rules,
            description(schema),
        )
        nested = nested_model(field.annotation)
        if nested is not None and nested[0] not in _COMMON and nested[0] not in seen:
            yield from field_rows(nested[0], path + nested[1], extra, (*seen, nested[0]))


def models_under(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, type[BaseModel]]]:
    """(path prefix, model) for `model` and every non-common model beneath it, depth first, each once."""
    seen: set[type[BaseModel]] = set()

    def walk(m: type[BaseModel], at: str) -> Iterator[tuple[str, type[BaseModel]]]:
        if m in seen:
            return
        seen.add(m)
        yield at, m
        for name, field in m.model_fields.items():
            nested = nested_model(field.annotation)
            if nested is not None and nested[0] not in _COMMON:
                yield from walk(nested[0], at + name + nested[1])

    yield from walk(model, prefix)


def rule_lines(model: type[BaseModel], prefix: str) -> list[str]:
    out = []
    for at, m in models_under(model, prefix):
        where = at.rstrip(".")
        for rule in RULES.get(m, ()):
            out.append(f"- `{where}`: {rule}")
    return out


def _spec_model(info: KindInfo) -> type[BaseModel]:
    model = model_class(unwrap(info.model.model_fields["spec"].annotation)[0])
    assert model is not None
    return model


def _status_model(info: KindInfo) -> type[BaseModel] | None:
    field = info.model.model_fields.get("status")
    return model_class(unwrap(field.annotation)[0]) if field is not None else None


def kind_section(info: KindInfo) -> list[str]:
    spec = _spec_model(info)
    status = _status_model(info)
    scope = "Namespaced" if info.namespaced else "Cluster"
    doc = inspect.cleandoc(info.model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    lines = [f"## {info.kind}", ""]
    if doc:
        lines += [doc, ""]
    columns = ", ".join(c.name for c in info.printer_columns)
    lines += [
        f"- apiVersion `{info.api_version}`, kind `{info.kind}`, plural `{info.plural}`, scope {scope}",
        f"- `kubectl get {info.plural}` columns: {columns}",
        f"- `spec` is {'required' if info.model.model_fields['spec'].is_required() else 'optional (defaults to `{}`)'}",
        "",
        "### Spec",
        "",
        TABLE_HEAD,
    ]
    immutable = immutable_fields(info)
    extra: dict[str, list[str]] = {path: [kind] for path, kind in immutable.items()}
    for path, what in WEBHOOK_DEFAULTS.get(info.kind, ()):
        extra.setdefault(path, []).append(f"defaulted on create: {what}")
    lines += [row.render() for row in field_rows(spec, "spec.", extra)]
    rules = rule_lines(spec, "spec.")
    if rules:
        lines += ["", "Rules across fields (DPF's CEL and webhook rules, and dpf's own):", "", *rules]
    updates = [f"- `{p}` is {k}" for p, k in sorted(immutable.items())]
    updates += [f"- {rule}" for rule in UPDATE_RULES.get(info.kind, ())]
    if updates:
        lines += ["", "On update:", "", *updates]
    if status is not None:
        lines += ["", "### Status", "", TABLE_HEAD, *(row.render() for row in field_rows(status, "status.", {}))]
        lines += status_notes(info, status)
    lines.append("")
    return lines


def status_notes(info: KindInfo, status: type[BaseModel]) -> list[str]:
    lines: list[str] = []
    phase = status.model_fields.get("phase")
    if info.kind == "DPU":
        path = " → ".join(f"`{p}`" for p in P.HAPPY_PATH)
        off = f"`{P.ERROR}` (retried with backoff, then resumed at `{P.NODE_EFFECT}`) and `{P.DELETING}`"
        lines += ["", f"Phases, in the order a DPU goes through them: {path}; {off} are off that path."]
    elif phase is not None:
        values = get_args(unwrap(phase.annotation)[0])
        lines += ["", "Phases: " + ", ".join(f"`{v}`" for v in values) + "."]
    elif info.kind in REPORTED_PHASES:
        shown = ", ".join(f"`{p}`" for p in REPORTED_PHASES[info.kind])
        lines += ["", f"Phases in the DPU dpfd's report (`dpfctl get reports`): {shown}."]
    docs = CONDITIONS.get(info.kind)
    if docs:
        lines += ["", "Conditions:", "", "| type | written by | True when | reasons |", "| --- | --- | --- | --- |"]
        for d in docs:
            reasons = ", ".join(f"`{r}`" for r in dict.fromkeys(d.reasons))
            lines.append(f"| `{d.type}` | {d.writer} | {cell(d.meaning)} | {cell(reasons)} |")
    return lines


def common_section() -> list[str]:
    lines = [
        "## Common types",
        "",
        "Kubernetes types used inside several kinds. Every kind's `metadata` is an [ObjectMeta](#objectmeta).",
        "",
    ]
    for model in common_models():
        doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        lines += [f"### {model.__name__}", ""]
        if doc:
            lines += [doc, ""]
        lines += [TABLE_HEAD, *(row.render() for row in field_rows(model, "", {}))]
        rules = RULES.get(model, ())
        if rules:
            lines += ["", "Rules:", "", *(f"- {r}" for r in rules)]
        lines.append("")
    return lines


def envelope_section() -> list[str]:
    lines = [
        "## What travels through etcd",
        "",
        "The controller writes an **Intent** per object and node under `/dpf/v1/intents/<node>/<kind>/<namespace>/"
        "<name>`; that node's dpfd answers with a **Report** under `/dpf/v1/reports/...` (`dpfd/api/intents.py`).",
        "",
    ]
    for model in (intents.Intent, intents.Report):
        doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        lines += [f"### {model.__name__}", ""]
        if doc:
            lines += [doc, ""]
        lines += [TABLE_HEAD, *(row.render() for row in field_rows(model, "", {})), ""]
    return lines


def render() -> str:
    lines = [
        "# API reference (generated)",
        "",
        f"<!-- Generated by scripts/gen-api-docs.py from dpfd/api/. Do not edit: run {REGENERATE}. -->",
        "",
        "Every DPF kind dpf serves, field by field, as the models in `dpfd/api/` define them (the CRDs in "
        "`deploy/crds/` are generated from the same models). [api.md](api.md) is the overview: what dpf does with "
        "each kind, validation from the command line, the admin API.",
        "",
        "Field paths are written as in a manifest: `[]` is any item of a list, `[<key>]` any value of a map. "
        "*required* is relative to the enclosing object: a required field of an optional object is required only "
        "when that object is given. Defaults are filled in by the API server when the enclosing object is present.",
        "",
        "Kinds:",
        "",
    ]
    for info in KINDS.values():
        lines.append(f"- [{info.kind}](#{anchor(info.kind)}) (`{info.api_version}`)")
    lines += [
        "- [Common types](#common-types), [what travels through etcd](#what-travels-through-etcd)",
        "",
        "Every kind: " + RULES[meta.DPFObject][0] + ".",
        "",
    ]
    for info in KINDS.values():
        lines += kind_section(info)
    lines += common_section()
    lines += envelope_section()
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT.relative_to(REPO)})")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale; regenerate with: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
