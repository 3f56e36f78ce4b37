"""/openapi/v3: enough for kubectl to see that we validate fields server-side (so it skips client-side
validation, which would need the protobuf /openapi/v2), to choose merge patches for custom resources, and for
`kubectl explain` to show a CRD's schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dpfd.sim.kubeapi.resources import Registry, ResourceType

Obj = dict[str, Any]
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_OBJECT_META_SCHEMA: Obj = {
    "description": "ObjectMeta is metadata that all persisted resources must have.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {"type": "string", "description": "Prefix for a server-generated name."},
        "namespace": {"type": "string", "description": "The namespace of the object."},
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Map of string keys and values to organize and categorize objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Unstructured key value map stored with a resource.",
        },
        "finalizers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Must be empty before the object is deleted from the registry.",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object"},
            "description": "Objects depended on by this object.",
        },
        "uid": {"type": "string", "description": "Set by the server."},
        "resourceVersion": {"type": "string", "description": "Opaque value for optimistic concurrency."},
        "generation": {
            "type": "integer",
            "format": "int64",
            "description": "A sequence number representing a specific generation of the desired state.",
        },
        "creationTimestamp": {"type": "string", "format": "date-time", "description": "Set by the server."},
        "deletionTimestamp": {"type": "string", "format": "date-time", "description": "Set by the server."},
    },
}


def schema_name(rt: ResourceType, version: str) -> str:
    if not rt.group:
        return f"io.k8s.api.core.{version}.{rt.kind}"
    if rt.group.endswith(".k8s.io"):
        return f"io.k8s.api.{rt.group.removesuffix('.k8s.io')}.{version}.{rt.kind}"
    return ".".join(reversed(rt.group.split("."))) + f".{version}.{rt.kind}"


def _type_schema(rt: ResourceType, version: str) -> Obj:
    schema = dict(rt.schemas.get(version) or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    props = dict(schema.get("properties") or {})
    props.setdefault(
        "apiVersion",
        {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this representation of an object.",
        },
    )
    props.setdefault(
        "kind",
        {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this object represents.",
        },
    )
    props["metadata"] = {
        "allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}],
        "description": "Standard object's metadata.",
    }
    schema["properties"] = props
    schema["x-kubernetes-group-version-kind"] = [{"group": rt.group, "version": version, "kind": rt.kind}]
    return schema


def _param(name: str, where: str = "query") -> Obj:
    p: Obj = {"name": name, "in": where, "schema": {"type": "string", "uniqueItems": True}}
    if where == "path":
        p["required"] = True
    return p


_WRITE_PARAMS = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]


def _operation(
    rt: ResourceType,
    version: str,
    action: str,
    ref: str,
    *,
    body: list[str] | None = None,
    params: list[Obj] | None = None,
) -> Obj:
    op: Obj = {
        "operationId": f"{action}{rt.kind}",
        "parameters": params or [],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": version, "kind": rt.kind},
    }
    if body:
        op["requestBody"] = {"content": {t: {"schema": {"$ref": ref}} for t in body}, "required": True}
    return op


def _paths(rt: ResourceType, version: str) -> dict[str, Obj]:
    base = f"/apis/{rt.group}/{version}" if rt.group else f"/api/{version}"
    ref = f"#/components/schemas/{schema_name(rt, version)}"
    # Strategic merge is not listed even for built-ins: kubectl would compute strategic patches from these
    # schema-less documents and warn; without it, kubectl uses its compiled-in types.
    patch_types = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
    scope = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    scope_params = [_param("namespace", "path")] if rt.namespaced else []
    paths: dict[str, Obj] = {
        scope: {
            "get": _operation(rt, version, "list", ref),
            "post": _operation(rt, version, "post", ref, body=["*/*"], params=_WRITE_PARAMS),
            "parameters": scope_params,
        },
        f"{scope}/{{name}}": {
            "get": _operation(rt, version, "get", ref),
            "put": _operation(rt, version, "put", ref, body=["*/*"], params=_WRITE_PARAMS),
            "patch": _operation(rt, version, "patch", ref, body=patch_types, params=[*_WRITE_PARAMS, _param("force")]),
            "delete": _operation(rt, version, "delete", ref),
            "parameters": [_param("name", "path"), *scope_params],
        },
    }
    if rt.status_subresource:
        paths[f"{scope}/{{name}}/status"] = {
            "get": _operation(rt, version, "get", ref),
            "put": _operation(rt, version, "put", ref, body=["*/*"], params=_WRITE_PARAMS),
            "patch": _operation(rt, version, "patch", ref, body=patch_types, params=[*_WRITE_PARAMS, _param("force")]),
            "parameters": [_param("name", "path"), *scope_params],
        }
    if rt.namespaced:
        paths[f"{base}/{rt.plural}"] = {"get": _operation(rt, version, "list", ref)}
    return paths


def group_version_document(registry: Registry, group: str, version: str) -> Obj | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Obj] = {}
    schemas: dict[str, Obj] = {OBJECT_META: _OBJECT_META_SCHEMA}
    for rt in types:
        paths.update(_paths(rt, version))
        schemas[schema_name(rt, version)] = _type_schema(rt, version)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


class OpenApiDocuments:
    """Documents per group-version, rebuilt when the registry changes; URLs carry a content hash as the real
    server's do, so clients caching by URL see new CRDs."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._generation = -1
        self._docs: dict[str, bytes] = {}
        self._index: bytes = b""

    def _refresh(self) -> None:
        if self._generation == self._registry.generation:
            return
        docs: dict[str, bytes] = {}
        for group, versions in self._registry.groups().items():
            for v in versions:
                doc = group_version_document(self._registry, group, v)
                if doc is not None:
                    docs[f"apis/{group}/{v}" if group else f"api/{v}"] = json.dumps(doc).encode()
        paths = {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={hashlib.sha512(body).hexdigest().upper()}"}
            for key, body in docs.items()
        }
        self._docs, self._index = docs, json.dumps({"paths": paths}).encode()
        self._generation = self._registry.generation

    def index(self) -> bytes:
        self._refresh()
        return self._index

    def document(self, key: str) -> bytes | None:
        self._refresh()
        return self._docs.get(key)
