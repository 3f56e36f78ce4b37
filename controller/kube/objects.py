"""Accessors for Kubernetes objects held as plain JSON dicts (what the API returns)."""

from __future__ import annotations

from typing import Any, NamedTuple

Obj = dict[str, Any]


class ObjKey(NamedTuple):
    """Namespace ("" when cluster-scoped) and name: what the work queues carry."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def meta(obj: Obj) -> dict[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name", ""))


def namespace_of(obj: Obj) -> str:
    return str(meta(obj).get("namespace") or "")


def key_of(obj: Obj) -> ObjKey:
    return ObjKey(namespace_of(obj), name_of(obj))


def uid_of(obj: Obj) -> str:
    return str(meta(obj).get("uid", ""))


def generation_of(obj: Obj) -> int:
    return int(meta(obj).get("generation") or 0)


def resource_version_of(obj: Obj) -> str:
    return str(meta(obj).get("resourceVersion", ""))


def labels_of(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("labels") or {})


def annotations_of(obj: Obj) -> dict[str, str]:
    return dict(meta(obj).get("annotations") or {})


def finalizers_of(obj: Obj) -> list[str]:
    return list(meta(obj).get("finalizers") or [])


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def condition_true(obj: Obj | None, type_: str) -> bool:
    """Whether the object's first status condition of `type_` is True."""
    for raw in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(raw, dict) and raw.get("type") == type_:
            return raw.get("status") == "True"
    return False


def describe(kind: str, key: ObjKey | Obj) -> str:
    """`Kind ns/name`, how logs and errors name an object."""
    k = key if isinstance(key, ObjKey) else key_of(key)
    return f"{kind} {k}"


def controller_owner_ref(owner: Obj, api_version: str, kind: str) -> dict[str, Any]:
    """An ownerReference like metav1.NewControllerRef: controller=true, blockOwnerDeletion=true."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def finalizer_patch(obj: Obj, finalizers: list[str]) -> dict[str, Any]:
    """A merge patch setting the finalizers, guarded by resourceVersion so a concurrent change conflicts."""
    return {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version_of(obj)}}
