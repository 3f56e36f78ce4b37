"""Which representation a client asked for in its Accept header: the object, a Table, or metadata only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpfd.sim.kubeapi import errors
from dpfd.sim.kubeapi.resources import ResourceType

Obj = dict[str, Any]


@dataclass(frozen=True)
class Representation:
    form: str  # "object" | "table" | "metadata"


OBJECT = Representation("object")
TABLE = Representation("table")
METADATA = Representation("metadata")


def negotiate(accept: str) -> Representation:
    """The first media type in `accept` we can produce; protobuf and CBOR are skipped (JSON only)."""
    if not accept.strip():
        return OBJECT
    for media in accept.split(","):
        parts = [p.strip() for p in media.split(";")]
        mime = parts[0].lower()
        params = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in parts[1:])}
        if mime not in ("application/json", "*/*", "application/*", "application/yaml"):
            continue
        as_ = params.get("as")
        if as_ == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return TABLE
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return METADATA
        if as_ is None:
            return OBJECT
    raise errors.not_acceptable(accept)


def present(rt: ResourceType, version: str, obj: Obj) -> Obj:
    """`obj` as served at `version` (objects are stored once; versions differ only in apiVersion)."""
    api_version = rt.api_version(version)
    return obj if obj.get("apiVersion") == api_version else {**obj, "apiVersion": api_version}


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }
