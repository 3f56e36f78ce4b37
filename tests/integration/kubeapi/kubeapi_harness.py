"""Shared pieces of the emulated-API tests: a hand-written DPU CRD, object builders, a stand-in validator,
and waiting on a condition with a deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubernetes_asyncio import watch

GROUP = "provisioning.dpu.nvidia.com"
VERSION = "v1alpha1"
DPU_API = f"{GROUP}/{VERSION}"

DPU_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"dpus.{GROUP}"},
    "spec": {
        "group": GROUP,
        "names": {
            "kind": "DPU",
            "listKind": "DPUList",
            "plural": "dpus",
            "singular": "dpu",
            "shortNames": ["dpu"],
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Node", "type": "string", "jsonPath": ".spec.nodeName"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "description": "Desired state of the DPU.",
                                "properties": {
                                    "nodeName": {"type": "string", "description": "The host the DPU is in."},
                                    "bfb": {"type": "string", "default": "bf-bundle"},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def dpu(name: str, node: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": DPU_API,
        "kind": "DPU",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"nodeName": node, **spec},
    }


class AcceptAll:
    """Stand-in for dpfd.api.validation: these tests are about the API server, not the DPF models."""

    def apply_defaults(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    def validate_object(self, obj: dict[str, Any]) -> list[Any]:
        return []

    def validate_update(self, old: dict[str, Any], new: dict[str, Any]) -> list[Any]:
        return []


async def watch_events(func: Callable[..., Any], *args: Any, count: int, **kwargs: Any) -> list[dict[str, Any]]:
    """The first `count` events of a kubernetes-asyncio watch (fewer if the server ends it first).

    The watch starts when this is awaited; pass resource_version to see what happened since then.
    """
    events: list[dict[str, Any]] = []
    async with watch.Watch() as w:  # a Watch owns a client session: close it even when stopping early
        async for event in w.stream(func, *args, **kwargs):
            events.append(event)
            if len(events) == count:
                break
    return events
