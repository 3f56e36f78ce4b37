"""What a DPUDeployment consumes (its BFB, DPUFlavor, and per service a DPUServiceTemplate and a
DPUServiceConfiguration), read from the caches; and how those objects are marked while consumed.

A consumed object carries the label `dpu.nvidia.com/consumed-by-dpudeployment-name=<dd>` and the finalizer
`dpu.nvidia.com/dpudeployment`, so it is not deleted from under a DPUDeployment; both go once no DPUDeployment of
its namespace uses it any more."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from controller.dpudeployment.names import (
    CONSUMED_BY_LABEL,
    DPUSERVICECONFIGURATIONS,
    DPUSERVICETEMPLATES,
    FINALIZER,
)
from controller.kube.informer import Informer
from controller.kube.objects import Obj, ObjKey, finalizers_of, is_deleting, key_of, labels_of, resource_version_of
from controller.kube.resources import BFBS, DPUFLAVORS, ResourceType
from dpfd.api.services import DPUDeployment, DPUServiceConfiguration, DPUServiceTemplate


@dataclass
class DependencyInformers:
    bfbs: Informer
    flavors: Informer
    templates: Informer
    configurations: Informer

    def pairs(self) -> list[tuple[ResourceType, Informer]]:
        return [
            (BFBS, self.bfbs),
            (DPUFLAVORS, self.flavors),
            (DPUSERVICETEMPLATES, self.templates),
            (DPUSERVICECONFIGURATIONS, self.configurations),
        ]


@dataclass
class Dependencies:
    flavor: Obj
    templates: dict[str, DPUServiceTemplate] = field(default_factory=dict)
    configurations: dict[str, DPUServiceConfiguration] = field(default_factory=dict)
    objects: list[tuple[ResourceType, Obj]] = field(default_factory=list)  # everything consumed


class MissingDependency(Exception):
    """A dependency is absent or does not fit: PrerequisitesReady's message."""


def references(dd: DPUDeployment) -> list[tuple[ResourceType, str]]:
    """The (kind, name) of every object `dd` consumes, in its namespace."""
    refs = [(BFBS, dd.spec.dpus.bfb), (DPUFLAVORS, dd.spec.dpus.flavor)]
    for svc in dd.spec.services.values():
        refs += [(DPUSERVICETEMPLATES, svc.serviceTemplate), (DPUSERVICECONFIGURATIONS, svc.serviceConfiguration)]
    return refs


def gather(dd: DPUDeployment, namespace: str, informers: DependencyInformers) -> Dependencies:
    """The dependencies from the caches; MissingDependency names the first one absent or wrong."""

    def get(rt: ResourceType, informer: Informer, name: str) -> Obj:
        obj = informer.get(namespace, name)
        if obj is None:
            raise MissingDependency(f"{rt.kind} {namespace}/{name} not found")
        return obj

    get(BFBS, informers.bfbs, dd.spec.dpus.bfb)
    deps = Dependencies(flavor=get(DPUFLAVORS, informers.flavors, dd.spec.dpus.flavor))
    for service, names in sorted(dd.spec.services.items()):
        t_obj = get(DPUSERVICETEMPLATES, informers.templates, names.serviceTemplate)
        c_obj = get(DPUSERVICECONFIGURATIONS, informers.configurations, names.serviceConfiguration)
        try:
            template = DPUServiceTemplate.model_validate(t_obj)
            config = DPUServiceConfiguration.model_validate(c_obj)
        except ValidationError as exc:
            raise MissingDependency(f"service {service}: invalid template or configuration: {exc}") from exc
        for what, obj, named in (("DPUServiceTemplate", t_obj, template.spec.deploymentServiceName),
                                 ("DPUServiceConfiguration", c_obj, config.spec.deploymentServiceName)):  # fmt: skip
            if named != service:
                raise MissingDependency(
                    f"service in {what} {key_of(obj)} doesn't match requested service in DPUDeployment"
                    f" ({named!r} is not {service!r})"
                )
        deps.templates[service], deps.configurations[service] = template, config
    for rt, informer in informers.pairs():
        for ref_rt, name in references(dd):
            if ref_rt == rt and (found := informer.get(namespace, name)) is not None:
                deps.objects.append((rt, found))
    return deps


def consumers(obj: Obj, rt: ResourceType, deployments: Iterable[Obj]) -> list[str]:
    """Names of the DPUDeployments of obj's namespace that consume it (as their specs say), sorted."""
    key = key_of(obj)
    out = []
    for dd_obj in deployments:
        if key_of(dd_obj).namespace != key.namespace:
            continue
        try:
            dd = DPUDeployment.model_validate(dd_obj)
        except ValidationError:
            continue
        if (rt, key.name) in references(dd):
            out.append(key_of(dd_obj).name)
    return sorted(set(out))


def mark_patch(obj: Obj, users: list[str]) -> dict[str, Any] | None:
    """The patch making `obj`'s label and finalizer say whether anyone consumes it; None when they already do.
    Guarded by resourceVersion: a concurrent change conflicts and the reconcile is retried."""
    label = users[0] if users else None
    has_finalizer = FINALIZER in finalizers_of(obj)
    if labels_of(obj).get(CONSUMED_BY_LABEL) == label and has_finalizer == bool(users):
        return None
    if users and not has_finalizer and is_deleting(obj):
        return None  # no finalizer may be added to an object being deleted
    finalizers = [f for f in finalizers_of(obj) if f != FINALIZER] + ([FINALIZER] if users else [])
    return {
        "metadata": {
            "labels": {CONSUMED_BY_LABEL: label},
            "finalizers": finalizers,
            "resourceVersion": resource_version_of(obj),
        }
    }


def marked_for(name: str, namespace: str, informers: DependencyInformers) -> list[tuple[ResourceType, Obj]]:
    """The objects of `namespace` labelled as consumed by DPUDeployment `name`."""
    return [
        (rt, obj)
        for rt, informer in informers.pairs()
        for obj in informer.list()
        if key_of(obj).namespace == namespace and labels_of(obj).get(CONSUMED_BY_LABEL) == name
    ]


def deployment_keys_using(obj: Obj, rt: ResourceType, deployments: Iterable[Obj]) -> set[ObjKey]:
    """DPUDeployments to reconcile when `obj` changes: those whose spec names it and the one its label names."""
    key = key_of(obj)
    keys = {ObjKey(key.namespace, n) for n in consumers(obj, rt, deployments)}
    label = labels_of(obj).get(CONSUMED_BY_LABEL)
    if label:
        keys.add(ObjKey(key.namespace, label))
    return keys
