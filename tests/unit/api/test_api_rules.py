"""Every validation rule (CRD schema, CEL, webhook, our own safety rules) with a failing case.

Each case starts from a valid manifest in manifests/, breaks one thing, and asserts the exact
Kubernetes field path and the reason. Rule cases must be the *only* problem, so a case also
proves the rest of the object stays valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dpfd.api.validation import validate_object

Obj = dict[str, Any]


def _walk(obj: Obj, path: str) -> tuple[Any, str | int]:
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
    parent: Any = obj
    for part in parts[:-1]:
        parent = parent[part]
    return parent, parts[-1]


def put(path: str, value: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        parent, last = _walk(obj, path)
        parent[last] = value

    return change


def drop(path: str) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        parent, last = _walk(obj, path)
        del parent[last]

    return change


def both(*changes: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        for c in changes:
            c(obj)

    return change


@dataclass(frozen=True)
class Case:
    id: str
    manifest: str
    change: Callable[[Obj], None]
    path: str
    reason: str  # the exact reason, or its start when it ends with "..."


BFB, FLAVOR, DPUSET = "BFB/bf-bundle", "DPUFlavor/dpf-provisioning-hbn", "DPUSet/dpuset"
DPU, CLUSTER = "DPU/worker-1-0000-03-00", "DPUCluster/dpu-cplane-tenant1"
SVC, TEMPLATE, CONFIG = (
    "DPUService/doca-hbn",
    "DPUServiceTemplate/doca-hbn",
    "DPUServiceConfiguration/doca-hbn",
)
DEPLOY, CRED = "DPUDeployment/hbn-only", "DPUServiceCredentialRequest/ovn-dpu"
DSI, SI, SIS = "DPUServiceInterface/p0", "ServiceInterface/vf3-worker-1", "ServiceInterfaceSet/p0"
CHAIN, DSC = "ServiceChain/hbn-to-fabric-worker-1-0000-03-00", "DPUServiceChain/hbn-to-fabric"
NET, SUBNET, OPCONF = "DPUServiceIPAM/loopback", "DPUServiceIPAM/pool1", "DPFOperatorConfig/dpfoperatorconfig"

BFB_URL = r"^(http|https)://.+\.bfb$"
UNIQUE_TAINT = {"key": "dpu.nvidia.com/provisioning", "effect": "NoSchedule"}
MAX_PERCENT = "must be > 0 and <= 100%, got "
NOT_PERCENT = 'must be an integer or a percentage like "25%", got '
NE = "spec.dpuTemplate.spec.nodeEffect"
IFACE = "spec.template.spec.template.spec"

CASES = [
    # ---- BFB: CRD patterns
    Case(
        "bfb-url-scheme",
        BFB,
        put("spec.url", "ftp://x/b.bfb"),
        "spec.url",
        f"Invalid value: \"ftp://x/b.bfb\": should match '{BFB_URL}'",
    ),
    Case(
        "bfb-url-suffix",
        BFB,
        put("spec.url", "http://x/b.iso"),
        "spec.url",
        f"Invalid value: \"http://x/b.iso\": should match '{BFB_URL}'",
    ),
    Case("bfb-url-missing", BFB, drop("spec.url"), "spec.url", "Required value"),
    Case(
        "bfb-filename",
        BFB,
        put("spec.fileName", "bundle.img"),
        "spec.fileName",
        "Invalid value: \"bundle.img\": should match '^[A-Za-z0-9_\\-.]+\\.bfb$'",
    ),
    Case("bfb-url-type", BFB, put("spec.url", 42), "spec.url", "Invalid value: 42: must be of type string"),
    # ---- DPUFlavor: webhook, schema and our safety rules
    Case(
        "nvconfig-count",
        FLAVOR,
        put("spec.nvconfig", [{"device": "*"}, {"device": "*"}]),
        "spec.nvconfig",
        "Too many: 2: must have at most 1 entry (it applies to all devices)",
    ),
    Case(
        "nvconfig-device",
        FLAVOR,
        put("spec.nvconfig.0.device", "p0"),
        "spec.nvconfig[0].device",
        'Unsupported value: "p0": supported values: "*"',
    ),
    Case(
        "nvconfig-parameter",
        FLAVOR,
        put("spec.nvconfig.0.parameters.0", "NUM_OF_VFS"),
        "spec.nvconfig[0].parameters[0]",
        "Invalid value: \"NUM_OF_VFS\": should match '^[^=\\s]+=[^\\s]*$'",
    ),
    Case(
        "reserved-without-dpu",
        FLAVOR,
        drop("spec.dpuResources"),
        "spec.systemReservedResources",
        "Forbidden: may only be set together with dpuResources",
    ),
    Case(
        "reserved-exceeds",
        FLAVOR,
        put("spec.systemReservedResources.memory", "64Gi"),
        "spec.systemReservedResources[memory]",
        'Invalid value: "64Gi": must not exceed dpuResources[memory] ("32Gi")',
    ),
    Case(
        "reserved-exceeds-cpu",
        FLAVOR,
        put("spec.systemReservedResources.cpu", "16001m"),
        "spec.systemReservedResources[cpu]",
        'Invalid value: "16001m": must not exceed dpuResources[cpu] (16)',
    ),
    Case(
        "reserved-unknown-resource",
        FLAVOR,
        put("spec.systemReservedResources.hugepages-2Mi", "1Gi"),
        "spec.systemReservedResources[hugepages-2Mi]",
        'Forbidden: dpuResources has no "hugepages-2Mi"',
    ),
    Case(
        "quantity",
        FLAVOR,
        put("spec.dpuResources.memory", "lots"),
        "spec.dpuResources[memory]",
        'Invalid value: "lots": must be a Kubernetes quantity such as "16Gi", "500m" or "2"',
    ),
    Case(
        "quantity-float",
        FLAVOR,
        put("spec.dpuResources.cpu", 0.5),
        "spec.dpuResources[cpu]",
        'Invalid value: 0.5: a quantity must be an integer or a string like "500m"',
    ),
    Case(
        "configfile-relative",
        FLAVOR,
        put("spec.configFiles.0.path", "etc/mellanox/mlnx-bf.conf"),
        "spec.configFiles[0].path",
        'Invalid value: "etc/mellanox/mlnx-bf.conf": must be an absolute path',
    ),
    Case(
        "configfile-dotdot",
        FLAVOR,
        put("spec.configFiles.0.path", "/etc/../root/.ssh/authorized_keys"),
        "spec.configFiles[0].path",
        "Invalid value: \"/etc/../root/.ssh/authorized_keys\": must not contain '..' segments",
    ),
    Case(
        "configfile-path-required",
        FLAVOR,
        drop("spec.configFiles.1.path"),
        "spec.configFiles[1].path",
        "Required value",
    ),
    Case(
        "configfile-operation",
        FLAVOR,
        put("spec.configFiles.0.operation", "replace"),
        "spec.configFiles[0].operation",
        'Unsupported value: "replace": supported values: "override", "append"',
    ),
    Case(
        "configfile-permissions",
        FLAVOR,
        put("spec.configFiles.0.permissions", "rw-r--r--"),
        "spec.configFiles[0].permissions",
        "Invalid value: \"rw-r--r--\": should match '^0?[0-7]{3}$'",
    ),
    # ---- DPUSet: webhook rules on strategy and node effect
    Case(
        "maxunavailable-zero",
        DPUSET,
        put("spec.strategy.rollingUpdate.maxUnavailable", 0),
        "spec.strategy.rollingUpdate.maxUnavailable",
        MAX_PERCENT + "0",
    ),
    Case(
        "maxunavailable-zero-string",
        DPUSET,
        put("spec.strategy.rollingUpdate.maxUnavailable", "0"),
        "spec.strategy.rollingUpdate.maxUnavailable",
        MAX_PERCENT + '"0"',
    ),
    Case(
        "maxunavailable-zero-percent",
        DPUSET,
        put("spec.strategy.rollingUpdate.maxUnavailable", "0%"),
        "spec.strategy.rollingUpdate.maxUnavailable",
        MAX_PERCENT + '"0%"',
    ),
    Case(
        "maxunavailable-over-100",
        DPUSET,
        put("spec.strategy.rollingUpdate.maxUnavailable", "101%"),
        "spec.strategy.rollingUpdate.maxUnavailable",
        MAX_PERCENT + '"101%"',
    ),
    Case(
        "maxunavailable-negative",
        DPUSET,
        put("spec.strategy.rollingUpdate.maxUnavailable", -1),
        "spec.strategy.rollingUpdate.maxUnavailable",
        MAX_PERCENT + "-1",
    ),
    Case(
        "maxunavailable-word",
        DPUSET,
        put("spec.strategy.rollingUpdate.maxUnavailable", "half"),
        "spec.strategy.rollingUpdate.maxUnavailable",
        NOT_PERCENT + '"half"',
    ),
    Case(
        "maxunavailable-bare-number-string",
        DPUSET,
        put("spec.strategy.rollingUpdate.maxUnavailable", "5"),
        "spec.strategy.rollingUpdate.maxUnavailable",
        NOT_PERCENT + '"5"',
    ),
    Case(
        "maxunavailable-bool",
        DPUSET,
        put("spec.strategy.rollingUpdate.maxUnavailable", True),
        "spec.strategy.rollingUpdate.maxUnavailable",
        "Invalid value: true: must be an integer or a string",
    ),
    Case(
        "strategy-type",
        DPUSET,
        put("spec.strategy.type", "Rolling"),
        "spec.strategy.type",
        'Unsupported value: "Rolling": supported values: "Recreate", "RollingUpdate"',
    ),
    Case(
        "nodeeffect-two",
        DPUSET,
        put(f"{NE}.drain", {}),
        NE,
        "must set exactly one of noEffect, taint, customLabel, drain; got taint, drain",
    ),
    Case(
        "nodeeffect-none",
        DPUSET,
        put(NE, {}),
        NE,
        "must set exactly one of noEffect, taint, customLabel, drain; got none",
    ),
    Case(
        "nodeeffect-noeffect-false",
        DPUSET,
        put(NE, {"noEffect": False}),
        NE,
        "must set exactly one of noEffect, taint, customLabel, drain; got none",
    ),
    Case(
        "nodeeffect-label-and-noeffect",
        DPUSET,
        put(NE, {"noEffect": True, "customLabel": {"a": "b"}}),
        NE,
        "must set exactly one of noEffect, taint, customLabel, drain; got noEffect, customLabel",
    ),
    Case(
        "taint-effect",
        DPUSET,
        put(f"{NE}.taint.effect", "Sometimes"),
        f"{NE}.taint.effect",
        'Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
    ),
    Case(
        "selector-values",
        DPUSET,
        put("spec.nodeSelector.matchExpressions.0", {"key": "a", "operator": "In"}),
        "spec.nodeSelector.matchExpressions[0].values",
        "Required value: must be specified when `operator` is 'In'",
    ),
    Case(
        "selector-operator",
        DPUSET,
        put("spec.nodeSelector.matchExpressions.0.operator", "Gt"),
        "spec.nodeSelector.matchExpressions[0].operator",
        'Unsupported value: "Gt": supported values: "In", "NotIn", "Exists", "DoesNotExist"',
    ),
    Case(
        "template-bfb",
        DPUSET,
        drop("spec.dpuTemplate.spec.bfb"),
        "spec.dpuTemplate.spec.bfb",
        "Required value",
    ),
    Case(
        "template-flavor-empty",
        DPUSET,
        put("spec.dpuTemplate.spec.dpuFlavor", ""),
        "spec.dpuTemplate.spec.dpuFlavor",
        'Invalid value: "": should be at least 1 chars long',
    ),
    Case(
        "dpuselector-key",
        DPUSET,
        put("spec.dpuSelector", {"bad key!": "x"}),
        "spec.dpuSelector[bad key!]",
        "Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', "
        "and must start and end with an alphanumeric character",
    ),
    Case(
        "nodelabels-value",
        DPUSET,
        put("spec.dpuTemplate.spec.cluster.nodeLabels.role", "-bad-"),
        "spec.dpuTemplate.spec.cluster.nodeLabels[role]",
        'Invalid value: "-bad-": a valid label must be ...',
    ),
    # ---- DPU
    Case("dpu-nodename", DPU, drop("spec.nodeName"), "spec.nodeName", "Required value"),
    Case(
        "dpu-nodeeffect",
        DPU,
        put("spec.nodeEffect", {"drain": {}, "taint": UNIQUE_TAINT}),
        "spec.nodeEffect",
        "must set exactly one of noEffect, taint, customLabel, drain; got taint, drain",
    ),
    Case(
        "dpu-phase",
        DPU,
        put("status.phase", "Flashing"),
        "status.phase",
        'Unsupported value: "Flashing": supported values: "Initializing", "Node Effect", ...',
    ),
    Case(
        "dpu-condition-status",
        DPU,
        put("status.conditions.0.status", "Maybe"),
        "status.conditions[0].status",
        'Unsupported value: "Maybe": supported values: "True", "False", "Unknown"',
    ),
    # ---- DPUCluster
    Case(
        "maxnodes-zero",
        CLUSTER,
        put("spec.maxNodes", 0),
        "spec.maxNodes",
        "Invalid value: 0: should be greater than or equal to 1",
    ),
    Case(
        "maxnodes-over",
        CLUSTER,
        put("spec.maxNodes", 1001),
        "spec.maxNodes",
        "Invalid value: 1001: should be less than or equal to 1000",
    ),
    Case(
        "maxnodes-string",
        CLUSTER,
        put("spec.maxNodes", "10"),
        "spec.maxNodes",
        'Invalid value: "10": must be of type integer',
    ),
    Case(
        "vrid-over",
        CLUSTER,
        put("spec.clusterEndpoint.keepalived.virtualRouterID", 256),
        "spec.clusterEndpoint.keepalived.virtualRouterID",
        "Invalid value: 256: should be less than or equal to 255",
    ),
    Case(
        "vrid-zero",
        CLUSTER,
        put("spec.clusterEndpoint.keepalived.virtualRouterID", 0),
        "spec.clusterEndpoint.keepalived.virtualRouterID",
        "Invalid value: 0: should be greater than or equal to 1",
    ),
    Case(
        "vip",
        CLUSTER,
        put("spec.clusterEndpoint.keepalived.vip", "dpu-api"),
        "spec.clusterEndpoint.keepalived.vip",
        'Invalid value: "dpu-api": must be an IP address',
    ),
    Case(
        "cluster-type",
        CLUSTER,
        put("spec.type", "aws"),
        "spec.type",
        "Invalid value: \"aws\": should match '^(static|kamaji|[^/]+/.+)$'",
    ),
    Case(
        "static-needs-kubeconfig",
        CLUSTER,
        put("spec.type", "static"),
        "spec.kubeconfig",
        "Required value: a static DPUCluster needs the Secret holding its admin kubeconfig",
    ),
    Case("cluster-version", CLUSTER, drop("spec.version"), "spec.version", "Required value"),
    # ---- DPUService
    Case(
        "interfaces-need-serviceid",
        SVC,
        drop("spec.serviceID"),
        "spec.serviceID",
        "Required value: serviceID must be provided when interfaces are provided",
    ),
    Case(
        "repourl",
        SVC,
        put("spec.helmChart.source.repoURL", "http://charts.example.com"),
        "spec.helmChart.source.repoURL",
        "Invalid value: \"http://charts.example.com\": should match '^(oci://|https://).+$'",
    ),
    Case(
        "chart-version",
        SVC,
        put("spec.helmChart.source.version", ""),
        "spec.helmChart.source.version",
        'Invalid value: "": should be at least 1 chars long',
    ),
    Case(
        "interfaces-empty",
        SVC,
        put("spec.interfaces", []),
        "spec.interfaces",
        "Invalid value: 0: should have at least 1 items",
    ),
    Case(
        "interfaces-too-many",
        SVC,
        put("spec.interfaces", [f"if{i}" for i in range(51)]),
        "spec.interfaces",
        "Too many: 51: must have at most 50 items",
    ),
    Case(
        "values-not-object",
        SVC,
        put("spec.helmChart.values", ["a"]),
        "spec.helmChart.values",
        'Invalid value: ["a"]: must be of type object',
    ),
    Case(
        "daemonset-selector",
        SVC,
        put(
            "spec.serviceDaemonSet.nodeSelector.nodeSelectorTerms.0.matchExpressions.0",
            {"key": "k", "operator": "Gt", "values": ["x"]},
        ),
        "spec.serviceDaemonSet.nodeSelector.nodeSelectorTerms[0].matchExpressions[0].values",
        "Invalid value: [\"x\"]: must be one integer for 'Gt'",
    ),
    Case(
        "daemonset-percent",
        SVC,
        put("spec.serviceDaemonSet.updateStrategy.rollingUpdate.maxUnavailable", "150%"),
        "spec.serviceDaemonSet.updateStrategy.rollingUpdate.maxUnavailable",
        'Invalid value: "150%": must be an integer or a percentage from 0% to 100%, like "25%"',
    ),
    Case(
        "daemonset-zero",
        SVC,
        put("spec.serviceDaemonSet.updateStrategy.rollingUpdate.maxUnavailable", 0),
        "spec.serviceDaemonSet.updateStrategy.rollingUpdate.maxUnavailable",
        "Invalid value: may not be 0 when maxSurge is 0",
    ),
    Case(
        "source-unknown-field",
        SVC,
        put("spec.helmChart.source.branch", "main"),
        "spec.helmChart.source",
        'unknown field "branch" (rejected by strict field validation)',
    ),
    # ---- DPUServiceTemplate / DPUServiceConfiguration
    Case(
        "template-resources",
        TEMPLATE,
        put("spec.resourceRequirements.memory", "6 GB"),
        "spec.resourceRequirements[memory]",
        'Invalid value: "6 GB": must be a Kubernetes quantity ...',
    ),
    Case(
        "template-service-name",
        TEMPLATE,
        drop("spec.deploymentServiceName"),
        "spec.deploymentServiceName",
        "Required value",
    ),
    Case(
        "config-interface-name",
        CONFIG,
        put("spec.interfaces.0.name", "a_very_long_name0"),
        "spec.interfaces[0].name",
        "Too long: may not be more than 15 chars, got 17",
    ),
    Case(
        "config-interface-duplicate",
        CONFIG,
        put("spec.interfaces.1.name", "p0_if"),
        "spec.interfaces[1].name",
        'Duplicate value: "p0_if"',
    ),
    # ---- DPUDeployment
    Case(
        "port-both",
        DEPLOY,
        put("spec.serviceChains.0.ports.0.service", {"name": "doca-hbn", "interface": "p0_if"}),
        "spec.serviceChains[0].ports[0]",
        "either service or serviceInterface must be specified",
    ),
    Case(
        "port-neither",
        DEPLOY,
        put("spec.serviceChains.0.ports.0", {}),
        "spec.serviceChains[0].ports[0]",
        "either service or serviceInterface must be specified",
    ),
    Case(
        "port-unknown-service",
        DEPLOY,
        put("spec.serviceChains.0.ports.1.service.name", "doca-fw"),
        "spec.serviceChains[0].ports[1].service.name",
        'Not found: "doca-fw": must be a key of spec.services',
    ),
    Case(
        "services-empty",
        DEPLOY,
        put("spec.services", {}),
        "spec.services",
        "Invalid value: 0: should have at least 1 properties",
    ),
    Case(
        "dpusets-suffix",
        DEPLOY,
        put("spec.dpus.dpuSets", [{"nameSuffix": "a"}, {"nameSuffix": "a"}]),
        "spec.dpus.dpuSets[1].nameSuffix",
        'Duplicate value: "a"',
    ),
    Case("deployment-flavor", DEPLOY, drop("spec.dpus.flavor"), "spec.dpus.flavor", "Required value"),
    # ---- DPUServiceCredentialRequest
    Case(
        "duration-short",
        CRED,
        put("spec.duration", "5m"),
        "spec.duration",
        'Invalid value: "5m": must be at least 10m',
    ),
    Case(
        "duration-short-mixed",
        CRED,
        put("spec.duration", "9m59s"),
        "spec.duration",
        'Invalid value: "9m59s": must be at least 10m',
    ),
    Case(
        "duration-format",
        CRED,
        put("spec.duration", "1 day"),
        "spec.duration",
        "Invalid value: \"1 day\": should match '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'",
    ),
    Case(
        "credential-type",
        CRED,
        put("spec.type", "token"),
        "spec.type",
        'Unsupported value: "token": supported values: "kubeconfig", "tokenFile"',
    ),
    Case("credential-secret", CRED, drop("spec.secret"), "spec.secret", "Required value"),
    # ---- interfaces and chains
    Case(
        "interface-block-missing",
        DSI,
        put(f"{IFACE}.interfaceType", "vf"),
        f"{IFACE}.vf",
        "Required value: for interfaceType=vf, vf must be set",
    ),
    Case(
        "interface-type",
        SI,
        put("spec.interfaceType", "bond"),
        "spec.interfaceType",
        'Unsupported value: "bond": supported values: "vlan", "physical", "pf", "vf", "ovn", "service"',
    ),
    Case(
        "vf-id",
        SI,
        put("spec.vf.vfID", -1),
        "spec.vf.vfID",
        "Invalid value: -1: should be greater than or equal to 0",
    ),
    Case("set-template", SIS, drop("spec.template"), "spec.template", "Required value"),
    Case(
        "chain-switches",
        CHAIN,
        put("spec.switches", []),
        "spec.switches",
        "Invalid value: 0: should have at least 1 items",
    ),
    Case(
        "chain-matchlabels",
        CHAIN,
        put("spec.switches.0.ports.0.serviceInterface.matchLabels", {}),
        "spec.switches[0].ports[0].serviceInterface.matchLabels",
        "Invalid value: 0: should have at least 1 properties",
    ),
    Case(
        "dpuchain-ipam",
        DSC,
        drop("spec.template.spec.template.spec.switches.0.ports.1.serviceInterface.ipam.matchLabels"),
        "spec.template.spec.template.spec.switches[0].ports[1].serviceInterface.ipam.matchLabels",
        "Required value",
    ),
    # ---- DPUServiceIPAM
    Case(
        "ipam-both",
        NET,
        put("spec.ipv4Subnet", {"subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "perNodeIPCount": 8}),
        "spec",
        "must set exactly one of ipv4Network, ipv4Subnet",
    ),
    Case(
        "ipam-neither",
        NET,
        drop("spec.ipv4Network"),
        "spec",
        "must set exactly one of ipv4Network, ipv4Subnet",
    ),
    Case(
        "ipam-network",
        NET,
        put("spec.ipv4Network.network", "10.0.0.1/16"),
        "spec.ipv4Network.network",
        'Invalid value: "10.0.0.1/16": must be an IPv4 network in CIDR notation like "10.0.0.0/16"',
    ),
    Case(
        "ipam-prefix-short",
        NET,
        put("spec.ipv4Network.prefixSize", 8),
        "spec.ipv4Network.prefixSize",
        "Invalid value: 8: must be longer than the network's /16",
    ),
    Case(
        "ipam-prefix-max",
        NET,
        put("spec.ipv4Network.prefixSize", 33),
        "spec.ipv4Network.prefixSize",
        "Invalid value: 33: should be less than or equal to 32",
    ),
    Case(
        "ipam-gateway-index",
        NET,
        put("spec.ipv4Network.gatewayIndex", 256),
        "spec.ipv4Network.gatewayIndex",
        "Invalid value: 256: must be less than 256, the size of a /24",
    ),
    Case(
        "ipam-default-gateway-needs-index",
        NET,
        drop("spec.ipv4Network.gatewayIndex"),
        "spec.ipv4Network.gatewayIndex",
        "Required value: defaultGateway needs a gatewayIndex",
    ),
    Case(
        "ipam-exclusion",
        NET,
        put("spec.ipv4Network.exclusions.1", "10.1.0.1"),
        "spec.ipv4Network.exclusions[1]",
        'Invalid value: "10.1.0.1": must be an IPv4 address within 10.0.0.0/16',
    ),
    Case(
        "ipam-allocation-prefix",
        NET,
        put("spec.ipv4Network.allocations.worker-1-0000-03-00", "10.0.1.0/25"),
        "spec.ipv4Network.allocations[worker-1-0000-03-00]",
        'Invalid value: "10.0.1.0/25": must be a /24 subnet of 10.0.0.0/16',
    ),
    Case(
        "ipam-allocation-outside",
        NET,
        put("spec.ipv4Network.allocations.worker-1-0000-03-00", "10.9.1.0/24"),
        "spec.ipv4Network.allocations[worker-1-0000-03-00]",
        'Invalid value: "10.9.1.0/24": must be a /24 subnet of 10.0.0.0/16',
    ),
    Case(
        "ipam-allocation-duplicate",
        NET,
        put("spec.ipv4Network.allocations.worker-2-0000-03-00", "10.0.1.0/24"),
        "spec.ipv4Network.allocations[worker-2-0000-03-00]",
        'Duplicate value: "10.0.1.0/24": already allocated to worker-1-0000-03-00',
    ),
    Case(
        "ipam-default-route",
        NET,
        put("spec.ipv4Network.routes.0.dst", "0.0.0.0/0"),
        "spec.ipv4Network.routes[0].dst",
        'Invalid value: "0.0.0.0/0": must not be the default route when defaultGateway is true',
    ),
    Case(
        "ipam-subnet-gateway",
        SUBNET,
        put("spec.ipv4Subnet.gateway", "192.168.80.1"),
        "spec.ipv4Subnet.gateway",
        'Invalid value: "192.168.80.1": must be an IPv4 address within 192.168.64.0/20',
    ),
    Case(
        "ipam-subnet-gateway-network",
        SUBNET,
        put("spec.ipv4Subnet.gateway", "192.168.64.0"),
        "spec.ipv4Subnet.gateway",
        'Invalid value: "192.168.64.0": must not be the network or broadcast address',
    ),
    Case(
        "ipam-subnet-count",
        SUBNET,
        put("spec.ipv4Subnet.perNodeIPCount", 8192),
        "spec.ipv4Subnet.perNodeIPCount",
        "Invalid value: 8192: must not exceed the 4096 addresses of 192.168.64.0/20",
    ),
    Case(
        "ipam-subnet-count-min",
        SUBNET,
        put("spec.ipv4Subnet.perNodeIPCount", 1),
        "spec.ipv4Subnet.perNodeIPCount",
        "Invalid value: 1: should be greater than or equal to 2",
    ),
    # ---- DPFOperatorConfig
    Case(
        "mtu-max",
        OPCONF,
        put("spec.networking.highSpeedMTU", 9217),
        "spec.networking.highSpeedMTU",
        "Invalid value: 9217: should be less than or equal to 9216",
    ),
    Case(
        "pvc-required",
        OPCONF,
        drop("spec.provisioningController.bfbPVCName"),
        "spec.provisioningController.bfbPVCName",
        "Required value",
    ),
    Case(
        "provisioning-required",
        OPCONF,
        drop("spec.provisioningController"),
        "spec.provisioningController",
        "Required value",
    ),
    Case(
        "pull-secret-name",
        OPCONF,
        put("spec.imagePullSecrets.0", "Pull_Secret"),
        "spec.imagePullSecrets[0]",
        'Invalid value: "Pull_Secret": a lowercase RFC 1123 subdomain must consist of ...',
    ),
    Case(
        "dms-timeout",
        OPCONF,
        put("spec.provisioningController.dmsTimeout", 0),
        "spec.provisioningController.dmsTimeout",
        "Invalid value: 0: should be greater than or equal to 1",
    ),
    # ---- metadata and the object itself
    Case(
        "label-key",
        BFB,
        put("metadata.labels", {"app/x/y": "v"}),
        "metadata.labels[app/x/y]",
        'Invalid value: "app/x/y": prefix part a lowercase RFC 1123 subdomain must consist of ...',
    ),
    Case(
        "annotation-key",
        BFB,
        put("metadata.annotations", {"-x": "v"}),
        "metadata.annotations[-x]",
        'Invalid value: "-x": name part must consist of ...',
    ),
    Case(
        "name",
        BFB,
        put("metadata.name", "BF_Bundle"),
        "metadata.name",
        'Invalid value: "BF_Bundle": a lowercase RFC 1123 subdomain must consist of ...',
    ),
    Case(
        "namespace",
        BFB,
        put("metadata.namespace", "dpf.system"),
        "metadata.namespace",
        'Invalid value: "dpf.system": a lowercase RFC 1123 label must consist of ...',
    ),
    Case(
        "name-missing",
        BFB,
        drop("metadata.name"),
        "metadata.name",
        "Required value: name or generateName is required",
    ),
    Case("spec-missing", BFB, drop("spec"), "spec", "Required value"),
    Case("spec-null", BFB, put("spec", None), "spec", "Required value"),
    Case("spec-not-object", BFB, put("spec", "url"), "spec", 'Invalid value: "url": must be of type object'),
    Case(
        "top-level-unknown",
        BFB,
        put("extra", 1),
        "",
        'unknown field "extra" (rejected by strict field validation)',
    ),
    Case(
        "nested-unknown",
        DPUSET,
        put(f"{NE}.taint.force", True),
        f"{NE}.taint",
        'unknown field "force" (rejected by strict field validation)',
    ),
    Case(
        "list-item-unknown",
        FLAVOR,
        put("spec.configFiles.1.mode", "0644"),
        "spec.configFiles[1]",
        'unknown field "mode" (rejected by strict field validation)',
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule(case: Case, manifests: dict[str, Obj]) -> None:
    obj = manifests[case.manifest]
    assert validate_object(obj) == [], "the starting manifest must be valid"
    case.change(obj)
    problems = validate_object(obj)
    assert len(problems) == 1, [p.format() for p in problems]
    (problem,) = problems
    assert problem.path == case.path
    if case.reason.endswith("..."):
        assert problem.reason.startswith(case.reason[:-3]), problem.reason
    else:
        assert problem.reason == case.reason
    kind, name = case.manifest.split("/")
    assert (problem.kind, problem.namespace, problem.name) == (kind, "dpf-operator-system", name) or (
        case.id in ("name", "namespace", "name-missing")
    )


def test_all_problems_of_an_object_are_reported(manifests: dict[str, Obj]) -> None:
    """Independent mistakes in different parts of one object are all listed, not just the first."""
    dpuset = manifests[DPUSET]
    both(
        put("spec.strategy.rollingUpdate.maxUnavailable", "0%"),
        put(f"{NE}.drain", {}),
        put("spec.dpuTemplate.spec.bfb", {}),
        put("spec.foo", 1),
    )(dpuset)
    paths = sorted((p.path, p.reason.split(":")[0]) for p in validate_object(dpuset))
    assert paths == [
        ("spec", 'unknown field "foo" (rejected by strict field validation)'),
        ("spec.dpuTemplate.spec.bfb.name", "Required value"),
        (NE, "must set exactly one of noEffect, taint, customLabel, drain; got taint, drain"),
        ("spec.strategy.rollingUpdate.maxUnavailable", 'must be > 0 and <= 100%, got "0%"'),
    ]


@pytest.mark.parametrize(
    ("manifest", "change"),
    [
        (DPUSET, put("spec.strategy.rollingUpdate.maxUnavailable", "100%")),
        (DPUSET, put("spec.strategy.rollingUpdate.maxUnavailable", 7)),
        (DPUSET, put("spec.strategy", {"type": "RollingUpdate"})),
        (DPUSET, drop("spec.dpuTemplate.spec.nodeEffect")),
        (DPUSET, put(NE, {"noEffect": True})),
        (DPUSET, put(NE, {"customLabel": {"dpu.nvidia.com/provisioning": "true"}})),
        (CRED, put("spec.duration", "600s")),
        (CRED, put("spec.duration", "1h30m")),
        (FLAVOR, put("spec.systemReservedResources", {"cpu": 16, "memory": "32768Mi"})),
        (FLAVOR, put("spec.nvconfig", [{"parameters": ["SRIOV_EN=1"]}])),
        (FLAVOR, put("spec.nvconfig.0.device", " * ")),
        (CLUSTER, put("spec.type", "nvidia/hosted")),
        (CLUSTER, drop("spec.maxNodes")),
        (SI, put("spec", {"interfaceType": "ovn"})),
        (BFB, put("spec.fileName", None)),
        (BFB, put("metadata", {"generateName": "bf-"})),
        (NET, both(put("spec.ipv4Network.prefixSize", 31), drop("spec.ipv4Network.allocations"))),
    ],
)
def test_valid_edge_cases(manifest: str, change: Callable[[Obj], None], manifests: dict[str, Obj]) -> None:
    obj = manifests[manifest]
    change(obj)
    assert validate_object(obj) == []
