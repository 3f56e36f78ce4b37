"""The kinds the emulated API serves: built-in types and those CustomResourceDefinitions register."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dpfd.api.registry import PrinterColumn

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CRD_GROUP = "apiextensions.k8s.io"

Obj = dict[str, Any]


@dataclass
class ResourceType:
    group: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    versions: tuple[str, ...]  # served versions, preferred first
    storage_version: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_subresource: bool = False
    has_generation: bool = False
    reset_status_on_create: bool = False
    printer_columns: dict[str, tuple[PrinterColumn, ...]] = field(default_factory=dict)
    schemas: dict[str, Obj] = field(default_factory=dict)
    crd_name: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Objects are stored once per (group, plural), whatever version they are served at."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """`dpus.provisioning.dpu.nvidia.com`, as the API server names a resource in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def api_version(self, version: str | None = None) -> str:
        v = version or self.storage_version
        return f"{self.group}/{v}" if self.group else v


def _core(kind: str, plural: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType("", kind, plural, kind.lower(), namespaced, ("v1",), "v1", **kw)


def builtin_types() -> list[ResourceType]:
    """The built-in kinds dpf needs (Namespaces, Nodes, Secrets, ... and CRDs themselves)."""
    return [
        _core(
            "Namespace",
            "namespaces",
            False,
            short_names=("ns",),
            status_subresource=True,
            verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        ),
        _core("Node", "nodes", False, short_names=("no",), status_subresource=True),
        _core("Secret", "secrets", True),
        _core("ConfigMap", "configmaps", True, short_names=("cm",)),
        _core("Event", "events", True, short_names=("ev",)),
        _core("ServiceAccount", "serviceaccounts", True, short_names=("sa",)),
        # Kamaji's API endpoint: DPF's kamaji cluster manager asks for a NodePort Service (services.py).
        _core("Service", "services", True, short_names=("svc",), categories=("all",), status_subresource=True),
        _core(
            "Pod",
            "pods",
            True,
            short_names=("po",),
            categories=("all",),
            status_subresource=True,
            reset_status_on_create=True,
        ),
        ResourceType(
            "policy",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "poddisruptionbudget",
            True,
            ("v1",),
            "v1",
            short_names=("pdb",),
            status_subresource=True,
            has_generation=True,
            reset_status_on_create=True,
        ),
        # What the emulated ArgoCD deploys for a DPUService (dpfd.sim.argocd): its service DaemonSet.
        ResourceType(
            "apps",
            "DaemonSet",
            "daemonsets",
            "daemonset",
            True,
            ("v1",),
            "v1",
            short_names=("ds",),
            categories=("all",),
            status_subresource=True,
            has_generation=True,
        ),
        ResourceType("coordination.k8s.io", "Lease", "leases", "lease", True, ("v1",), "v1"),
        ResourceType("events.k8s.io", "Event", "events", "event", True, ("v1",), "v1", short_names=("ev",)),
        ResourceType(
            CRD_GROUP,
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "customresourcedefinition",
            False,
            ("v1",),
            "v1",
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            status_subresource=True,
            has_generation=True,
        ),
    ]


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order, preferred first: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > other."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, version)


class CrdError(ValueError):
    """A CustomResourceDefinition we cannot serve; `causes` are (field path, message)."""

    def __init__(self, causes: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in causes))
        self.causes = causes


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def crd_to_type(crd: Obj) -> ResourceType:
    """The resource a CRD defines, or CrdError naming every field that stops us serving it."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group") or "")
    plural = str(names.get("plural") or "")
    kind = str(names.get("kind") or "")
    causes: list[tuple[str, str]] = []
    if not group or "." not in group:
        causes.append(("spec.group", f'Invalid value: "{group}": should be a domain with at least one dot'))
    if not plural or not _DNS_LABEL.match(plural):
        causes.append(("spec.names.plural", f'Invalid value: "{plural}": must be a lowercase DNS label'))
    if not kind:
        causes.append(("spec.names.kind", "Required value"))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", f'Unsupported value: "{scope}": supported values: "Cluster", "Namespaced"'))
    expected_name = f"{plural}.{group}"
    if crd.get("metadata", {}).get("name") != expected_name:
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{crd.get("metadata", {}).get("name")}": must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("spec.versions", "Invalid value: null: must have exactly one version marked as storage version"))
    served: list[str] = []
    storage = [v.get("name") for v in versions if v.get("storage")]
    if versions and len(storage) != 1:
        causes.append(
            (
                "spec.versions",
                f"Invalid value: must have exactly one version marked as storage version, "
                f"status.storedVersions[{len(storage)}]",
            )
        )
    columns: dict[str, tuple[PrinterColumn, ...]] = {}
    schemas: dict[str, Obj] = {}
    status_subresource = False
    for i, v in enumerate(versions):
        name = str(v.get("name") or "")
        if not name:
            causes.append((f"spec.versions[{i}].name", "Required value"))
            continue
        if v.get("served", True):
            served.append(name)
        cols = []
        for j, c in enumerate(v.get("additionalPrinterColumns") or []):
            if not c.get("name") or not c.get("jsonPath"):
                causes.append(
                    (f"spec.versions[{i}].additionalPrinterColumns[{j}]", "Required value: name and jsonPath")
                )
                continue
            cols.append(
                PrinterColumn(
                    str(c["name"]),
                    str(c.get("type") or "string"),
                    str(c["jsonPath"]),
                    str(c.get("description") or ""),
                    int(c.get("priority") or 0),
                    str(c.get("format") or ""),
                )
            )
        columns[name] = tuple(cols)
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if isinstance(schema, dict):
            schemas[name] = schema
        if v.get("storage") and "status" in (v.get("subresources") or {}):
            status_subresource = True
    if causes:
        raise CrdError(causes)
    served.sort(key=version_priority)
    return ResourceType(
        group=group,
        kind=kind,
        plural=plural,
        singular=str(names.get("singular") or kind.lower()),
        namespaced=scope == "Namespaced",
        versions=tuple(served),
        storage_version=str(storage[0]),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        status_subresource=status_subresource,
        has_generation=True,
        reset_status_on_create=status_subresource,
        printer_columns=columns,
        schemas=schemas,
        crd_name=expected_name,
    )


class Registry:
    """Every served resource, looked up by URL path, by apiVersion+kind, or by storage key."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], ResourceType] = {}
        self.generation = 0  # bumped on every change, so discovery documents can be cached

    def add(self, rt: ResourceType) -> None:
        self._by_key[rt.key] = rt
        self.generation += 1

    def remove(self, key: tuple[str, str]) -> None:
        if self._by_key.pop(key, None) is not None:
            self.generation += 1

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        return self._by_key.get(key)

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._by_key.get((group, plural))
        return rt if rt is not None and version in rt.versions else None

    def by_kind(self, api_version: str, kind: str) -> tuple[ResourceType, str] | None:
        """The resource serving `kind` at `api_version`, and the version part."""
        group, _, version = api_version.rpartition("/")
        for rt in self._by_key.values():
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt, version
        return None

    def types(self) -> list[ResourceType]:
        return list(self._by_key.values())

    def groups(self) -> dict[str, list[str]]:
        """Group name → served versions, preferred first; core ("") first, then built-ins, then the rest."""
        out: dict[str, list[str]] = {}
        for rt in self._by_key.values():
            versions = out.setdefault(rt.group, [])
            versions.extend(v for v in rt.versions if v not in versions)
        for versions in out.values():
            versions.sort(key=version_priority)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._by_key.values() if rt.group == group and version in rt.versions]
