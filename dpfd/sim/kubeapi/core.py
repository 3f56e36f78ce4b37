"""The API's semantics on top of the store: create / update / patch / delete, generation and status rules,
finalizers and deletionTimestamp, namespaces, CRD registration, and the garbage collector (ownerReferences).

HTTP handlers and the in-process interface both call this, so both behave the same and emit the same events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import uuid
from collections import deque
from typing import Any

import yaml

from dpfd import fastjson
from dpfd.api.conditions import now_rfc3339
from dpfd.sim.kubeapi import disruption, errors, services
from dpfd.sim.kubeapi.admission import DpfAdmission, apply_schema_defaults
from dpfd.sim.kubeapi.errors import ApiError
from dpfd.sim.kubeapi.patch import PatchError, clone, json_patch, merge_patch, strategic_merge_patch
from dpfd.sim.kubeapi.resources import CRD_GROUP, CrdError, Registry, ResourceType, crd_to_type
from dpfd.sim.kubeapi.selectors import FieldSelector, LabelSelector
from dpfd.sim.kubeapi.store import ObjKey, Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACES = ("", "namespaces")
CRDS = (CRD_GROUP, "customresourcedefinitions")
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
# Set by the server; a client's values for these are ignored on update.
SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

PATCH_MERGE = "application/merge-patch+json"
PATCH_JSON = "application/json-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (PATCH_MERGE, PATCH_JSON, PATCH_STRATEGIC, PATCH_APPLY)


def _is_deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _without(obj: Obj, *keys: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in keys}


class ApiCore:
    def __init__(self, registry: Registry, store: Store, admission: DpfAdmission) -> None:
        self.registry = registry
        self.store = store
        self.admission = admission
        self._gc_queue: deque[tuple[str, Any]] = deque()
        self._gc_scheduled = False

    # ---- reads

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector | None,
        fields: FieldSelector | None,
    ) -> list[Obj]:
        ns = namespace if rt.namespaced else None
        if fields is not None and (ns_pin := fields.exact("metadata.namespace")) is not None and rt.namespaced:
            ns = ns_pin if ns is None or ns == ns_pin else "\0"  # "\0": no namespace has that name
        name = fields.exact("metadata.name") if fields is not None else None
        if name is not None and (ns is not None or not rt.namespaced):
            # a pinned name (kubectl delete --wait, get -w NAME) is a lookup, not a scan
            one = self.store.get(rt.key, ns or "", name)
            items = [one] if one is not None else []
        else:
            items = self.store.in_scope(rt.key, ns)
        if labels is not None:
            items = [o for o in items if labels.matches(o)]
        if fields is not None:
            items = [o for o in items if fields.matches(o)]
        return items

    def resolve(self, api_version: str, kind: str) -> tuple[ResourceType, str]:
        found = self.registry.by_kind(api_version, kind)
        if found is None:
            raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')
        return found

    # ---- create

    def create(self, rt: ResourceType, namespace: str, body: Any, *, dry_run: bool = False) -> Obj:
        obj = self._checked_body(rt, body)
        meta = obj["metadata"]
        ns = self._namespace_for_write(rt, namespace, meta)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise errors.invalid(rt, "", [("metadata.name", "Required value: name or generateName is required")])
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        name = str(meta["name"])
        self._check_name(rt, name)
        if self.store.get(rt.key, ns, name) is not None:
            raise errors.already_exists(rt, name)
        for k in (*SERVER_METADATA, "resourceVersion", "selfLink", "managedFields"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.has_generation:
            meta["generation"] = 1
        if rt.reset_status_on_create:
            obj.pop("status", None)
        self._prepare_builtin_create(rt, obj)
        apply_schema_defaults(rt.schemas.get(rt.storage_version), obj)
        obj = self.admission.admit_create(rt, obj)
        new_type = self._crd_type(obj, None) if rt.key == CRDS else None
        if dry_run:
            return obj
        stored = self.store.put(rt.key, obj, "ADDED")
        if new_type is not None:
            self.registry.add(new_type)
        self._after_put(rt, stored)
        return stored

    def _checked_body(self, rt: ResourceType, body: Any, *, copy: bool = True) -> Obj:
        """A private copy of a request body, with apiVersion and kind checked and filled in."""
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of a {rt.kind} must be a JSON object")
        obj = clone(body) if copy else body
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != rt.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        if api_version and api_version not in {rt.api_version(v) for v in rt.versions}:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version()})"
            )
        obj["apiVersion"] = rt.api_version()  # stored at the storage version; no conversion between versions
        obj["kind"] = rt.kind
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = {}
        elif not isinstance(meta, dict):
            raise errors.bad_request(f"metadata of the {rt.kind} must be a JSON object")
        return obj

    def _namespace_for_write(self, rt: ResourceType, namespace: str, meta: Obj) -> str:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return ""
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
        ns_type = self.registry.by_key(NAMESPACES)
        assert ns_type is not None
        ns_obj = self.store.get(NAMESPACES, "", namespace)
        if ns_obj is None:
            raise errors.not_found(ns_type, namespace)
        if _is_deleting(ns_obj):
            raise errors.forbidden(
                rt,
                str(meta.get("name") or meta.get("generateName") or ""),
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )
        return namespace

    def _check_name(self, rt: ResourceType, name: str) -> None:
        if rt.key == NAMESPACES:
            if not _LABEL.match(name) or len(name) > 63:
                raise errors.invalid(
                    rt,
                    name,
                    [
                        (
                            "metadata.name",
                            f'Invalid value: "{name}": a lowercase RFC 1123 '
                            "label must consist of lower case alphanumeric characters or '-', "
                            "and must start and end with an alphanumeric character",
                        )
                    ],
                )
        elif not _SUBDOMAIN.match(name) or len(name) > 253:
            raise errors.invalid(
                rt,
                name,
                [
                    (
                        "metadata.name",
                        f'Invalid value: "{name}": a lowercase RFC 1123 '
                        "subdomain must consist of lower case alphanumeric characters, '-' or "
                        "'.', and must start and end with an alphanumeric character",
                    )
                ],
            )

    def _prepare_builtin_create(self, rt: ResourceType, obj: Obj) -> None:
        if rt.key == NAMESPACES:
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            obj["status"] = {"phase": "Active"}
            meta = obj["metadata"]
            meta["labels"] = {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: meta["name"]}
        elif rt.key == ("", "pods"):
            obj["status"] = {"phase": "Pending"}
        elif rt.key == ("", "secrets"):
            obj["type"] = obj.get("type") or "Opaque"
        elif rt.key == disruption.PDBS:
            self._check_budget(rt, obj)
            obj["status"] = self._budget_status(obj)
        elif rt.key == services.SERVICES:
            causes = services.prepare_create(obj, self.store.in_scope(rt.key, None))
            if causes:
                raise errors.invalid(rt, obj["metadata"]["name"], causes)

    def _crd_type(self, crd: Obj, old_crd: Obj | None) -> ResourceType:
        """The type a CRD object defines; also fills in the CRD's status as the API server does."""
        name = crd["metadata"].get("name", "")
        old_type = self.registry.by_key(self._crd_key(old_crd)) if old_crd is not None else None
        crd_type = self.registry.by_key(CRDS)
        assert crd_type is not None
        try:
            new_type = crd_to_type(crd)
        except CrdError as e:
            raise errors.invalid(crd_type, name, e.causes) from e
        existing = self.registry.by_key(new_type.key)
        if existing is not None and existing.crd_name is None:
            raise errors.invalid(
                crd_type,
                name,
                [("spec.names.plural", f'Invalid value: "{new_type.plural}": is served by a built-in type')],
            )
        if old_type is not None and old_type.namespaced != new_type.namespaced:
            raise errors.invalid(crd_type, name, [("spec.scope", "Invalid value: field is immutable")])
        names = crd["spec"]["names"]
        since = {
            c.get("type"): c.get("lastTransitionTime") for c in (old_crd or {}).get("status", {}).get("conditions", [])
        }
        crd["status"] = {
            "acceptedNames": {
                k: names[k]
                for k in ("plural", "singular", "shortNames", "kind", "listKind", "categories")
                if k in names
            }
            | {"singular": new_type.singular, "listKind": names.get("listKind", new_type.list_kind)},
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": since.get("NamesAccepted") or now_rfc3339(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": since.get("Established") or now_rfc3339(),
                },
            ],
            "storedVersions": [new_type.storage_version],
        }
        return new_type

    # ---- update and patch

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, ns, name)
        if old is None:
            if rt.key == ("coordination.k8s.io", "leases") and subresource is None:
                return self.create(rt, ns, body, dry_run=dry_run)  # Leases allow create-on-update
            raise errors.not_found(rt, name)
        new = self._checked_body(rt, body)
        self._check_identity(rt, new, name, ns)
        want = new["metadata"].get("resourceVersion")
        if want and want != old["metadata"]["resourceVersion"]:
            raise errors.stale_resource_version(rt, name)
        return self._commit_update(
            rt,
            old,
            self._merge_update(rt, old, new, subresource),
            defaults=subresource is None,
            dry_run=dry_run,
            admit=subresource is None,
        )

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        raw: bytes,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> tuple[Obj, bool]:
        """Apply a patch; returns the object and whether it was created (server-side apply only)."""
        ns = namespace if rt.namespaced else ""
        body = self._parse_patch(patch_type, raw)
        old = self.store.get(rt.key, ns, name)
        if patch_type == PATCH_APPLY and not field_manager:
            raise errors.bad_request("PATCH with apply-patch+yaml requires the fieldManager parameter")
        if old is None:
            if patch_type == PATCH_APPLY and subresource is None:
                if isinstance(body, dict):
                    body.setdefault("metadata", {}).setdefault("name", name)
                return self.create(rt, ns, body, dry_run=dry_run), True
            raise errors.not_found(rt, name)
        try:
            if patch_type == PATCH_JSON:
                patched = json_patch(old, body)
            elif not isinstance(body, dict):
                raise errors.bad_request(f"a {patch_type} body must be a JSON object")
            elif patch_type == PATCH_STRATEGIC:
                patched = strategic_merge_patch(clone(old), body)
            else:
                patched = merge_patch(clone(old), body)
        except PatchError as e:
            raise ApiError(422, "Invalid", str(e)) from e
        new = self._checked_body(rt, patched, copy=False)  # the patch functions return a fresh tree
        self._check_identity(rt, new, name, ns)
        want = new["metadata"].get("resourceVersion")
        if want and want != old["metadata"]["resourceVersion"]:
            raise errors.stale_resource_version(rt, name)  # the patch carried a resourceVersion precondition
        merged = self._merge_update(rt, old, new, subresource)
        committed = self._commit_update(
            rt, old, merged, defaults=subresource is None, dry_run=dry_run, admit=subresource is None
        )
        return committed, False

    def _parse_patch(self, patch_type: str, raw: bytes) -> Any:
        try:
            if patch_type == PATCH_APPLY:
                return yaml.safe_load(raw.decode())
            return fastjson.loads(raw)
        except (ValueError, yaml.YAMLError) as e:
            raise errors.bad_request(f"error decoding patch: {e}") from e

    def _check_identity(self, rt: ResourceType, new: Obj, name: str, ns: str) -> None:
        meta = new["metadata"]
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced:
            if meta.get("namespace", ns) != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        meta["name"] = name

    def _merge_update(self, rt: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
        """What an update may change: the status endpoint only status; the main one all but status (when
        the kind has a status subresource) and the server-managed metadata."""
        if subresource == "status":
            merged = {**old, "metadata": dict(old["metadata"])}
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            return merged
        meta = new["metadata"]
        for k in SERVER_METADATA:
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if rt.status_subresource:
            if "status" in old:
                new["status"] = clone(old["status"])  # a copy: defaulting may fill it in place
            else:
                new.pop("status", None)
        if rt.key == NAMESPACES:
            meta["labels"] = {**(meta.get("labels") or {}), NAMESPACE_NAME_LABEL: meta["name"]}
        return new

    def _commit_update(
        self,
        rt: ResourceType,
        old: Obj,
        new: Obj,
        *,
        defaults: bool,
        dry_run: bool = False,
        admit: bool = True,
    ) -> Obj:
        meta, old_meta = new["metadata"], old["metadata"]
        name = old_meta["name"]
        if old_meta.get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
            if added:
                raise errors.invalid(
                    rt,
                    name,
                    [
                        (
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added "
                            f"if the object is being deleted, found new finalizers {added}",
                        )
                    ],
                )
        if defaults:
            apply_schema_defaults(rt.schemas.get(rt.storage_version), new)
        if admit and rt.key == disruption.PDBS:
            self._check_budget(rt, new)
        if admit and rt.key == services.SERVICES:
            others = [s for s in self.store.in_scope(rt.key, None) if s["metadata"]["uid"] != old_meta["uid"]]
            causes = services.prepare_update(old, new, others)
            if causes:
                raise errors.invalid(rt, name, causes)
        # DPF's webhooks are registered for the main resource only: writes to /status are not sent to them.
        if admit:
            new = self.admission.admit_update(rt, old, new, defaults=defaults)
            meta = new["metadata"]
        new_type = None
        if rt.key == CRDS:
            new_type = self._crd_type(new, old)
            if self._crd_key(new) != self._crd_key(old):
                raise errors.invalid(rt, name, [("spec.group", "Invalid value: group and plural are immutable")])
        if rt.has_generation:
            excluded = ("metadata", "status") if rt.status_subresource else ("metadata",)
            changed = _without(new, *excluded) != _without(old, *excluded)
            meta["generation"] = int(old_meta.get("generation") or 1) + (1 if changed else 0)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return old  # a no-op write changes nothing, not even the resourceVersion
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.key != NAMESPACES:
            return self._remove(rt, new)
        stored = self.store.put(rt.key, new, "MODIFIED", old)
        if rt.key == NAMESPACES and meta.get("deletionTimestamp"):
            self._schedule_gc(("namespace", name))  # it goes once empty and without finalizers
        if new_type is not None:
            self.registry.add(new_type)
        self._after_put(rt, stored)
        return stored

    @staticmethod
    def _crd_key(crd: Obj) -> tuple[str, str]:
        spec = crd.get("spec") or {}
        return (str(spec.get("group", "")), str((spec.get("names") or {}).get("plural", "")))

    # ---- delete

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: Obj | None = None,
        dry_run: bool = False,
    ) -> Obj:
        obj = self.get(rt, namespace, name)
        meta = obj["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise errors.conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise errors.conflict(
                rt,
                name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta['resourceVersion']}",
            )
        if rt.key == NAMESPACES and name in PROTECTED_NAMESPACES:
            raise errors.forbidden(rt, name, "this namespace may not be deleted")
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(f'unsupported propagationPolicy "{propagation}"')
        if _is_deleting(obj) or dry_run:
            return obj
        return self._delete(rt, obj, propagation or "Background")

    def _delete(self, rt: ResourceType, obj: Obj, propagation: str) -> Obj:
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if rt.key == NAMESPACES:
            status = {**obj.get("status", {}), "phase": "Terminating"}
            marked = {
                **obj,
                "status": status,
                "metadata": {**meta, "deletionTimestamp": now_rfc3339(), "deletionGracePeriodSeconds": 0},
            }
            stored = self.store.put(rt.key, marked, "MODIFIED", obj)
            self._schedule_gc(("namespace", meta["name"]))
            return stored
        if self.store.dependents(meta["uid"]):
            if propagation == "Foreground" and FOREGROUND not in finalizers:
                finalizers.append(FOREGROUND)
            elif propagation == "Orphan" and ORPHAN not in finalizers:
                finalizers.append(ORPHAN)
        if not finalizers:
            return self._remove(rt, obj)
        marked = {
            **obj,
            "metadata": {
                **meta,
                "finalizers": finalizers,
                "deletionTimestamp": now_rfc3339(),
                "deletionGracePeriodSeconds": 0,
            },
        }
        stored = self.store.put(rt.key, marked, "MODIFIED", obj)
        if FOREGROUND in finalizers or ORPHAN in finalizers:
            self._schedule_gc(("owner", meta["uid"]))
        return stored

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector | None,
        fields: FieldSelector | None,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> list[Obj]:
        out = []
        for obj in self.list_objects(rt, namespace, labels, fields):
            meta = obj["metadata"]
            out.append(
                self.delete(rt, meta.get("namespace", ""), meta["name"], propagation=propagation, dry_run=dry_run)
            )
        return out

    def _remove(self, rt: ResourceType, obj: Obj) -> Obj:
        gone = self.store.remove(rt.key, obj)
        meta = gone["metadata"]
        for dep in self.store.dependents(meta["uid"]):
            self._schedule_gc(("orphaned", dep))
        for ref in meta.get("ownerReferences") or []:
            if ref.get("uid"):
                self._schedule_gc(("owner", str(ref["uid"])))
        ns = meta.get("namespace")
        if ns:
            ns_obj = self.store.get(NAMESPACES, "", ns)
            if ns_obj is not None and _is_deleting(ns_obj):
                self._schedule_gc(("namespace", ns))
        if rt.key == CRDS:
            self._drop_custom_resource(gone)
        if rt.key == disruption.PODS:
            self._refresh_budgets(meta.get("namespace", ""))
        return gone

    def _drop_custom_resource(self, crd: Obj) -> None:
        key = self._crd_key(crd)
        served = self.registry.by_key(key)
        if served is None or served.crd_name is None:
            return
        for obj in self.store.in_scope(key, None):
            self._remove(served, obj)
        self.registry.remove(key)

    def _after_put(self, rt: ResourceType, obj: Obj) -> None:
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and all(self.store.by_uid(str(r.get("uid"))) is None for r in refs):
            meta = obj["metadata"]
            self._schedule_gc(("orphaned", (rt.key, meta.get("namespace", ""), meta["name"])))
        if rt.key == disruption.PODS:
            self._refresh_budgets(obj["metadata"].get("namespace", ""))
        elif rt.key == disruption.PDBS:
            self._refresh_budgets(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    # ---- PodDisruptionBudgets and the eviction subresource (see disruption.py)

    def _check_budget(self, rt: ResourceType, pdb: Obj) -> None:
        problems = disruption.spec_problems(pdb)
        if problems:
            raise errors.invalid(rt, str(pdb["metadata"].get("name", "")), problems)

    def _replicas_of(self, pod: Obj) -> int | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            key = self.store.by_uid(str(ref.get("uid"))) if ref.get("controller") else None
            owner = self.store.get(*key) if key is not None else None
            replicas = ((owner or {}).get("spec") or {}).get("replicas")
            if isinstance(replicas, int) and not isinstance(replicas, bool):
                return replicas
        return None

    def _budget_status(self, pdb: Obj) -> Obj:
        pods = self.store.in_scope(disruption.PODS, pdb["metadata"].get("namespace", ""))
        return disruption.compute_status(pdb, pods, self._replicas_of, now_rfc3339())

    def _refresh_budgets(self, namespace: str, only: str | None = None) -> None:
        """Keep the budgets' status current, as the disruption controller does (here, at once)."""
        rt = self.registry.by_key(disruption.PDBS)
        if rt is None or not namespace:
            return
        for pdb in self.store.in_scope(disruption.PDBS, namespace):
            if (only is not None and pdb["metadata"]["name"] != only) or _is_deleting(pdb):
                continue
            status = self._budget_status(pdb)
            if status != pdb.get("status"):
                new = {**pdb, "metadata": dict(pdb["metadata"]), "status": status}  # stored objects are never mutated
                self._commit_update(rt, pdb, new, defaults=False, admit=False)

    def evict(self, rt: ResourceType, namespace: str, name: str, body: Any, *, dry_run: bool = False) -> Obj:
        """POST pods/{name}/eviction: delete the pod if its PodDisruptionBudget allows; 429 if not."""
        if body is not None and not isinstance(body, dict):
            raise errors.bad_request("the body of an Eviction must be a JSON object")
        eviction = body or {}
        meta = eviction.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        pod = self.get(rt, namespace, name)
        disruption.verdict(pod, self.store.in_scope(disruption.PDBS, namespace))
        opts = eviction.get("deleteOptions") or {}
        return self.delete(
            rt,
            namespace,
            name,
            propagation=opts.get("propagationPolicy"),
            preconditions=opts.get("preconditions"),
            dry_run=dry_run,
        )

    # ---- garbage collection (asynchronous, like the real controller: soon after the write, not during it)

    def _schedule_gc(self, item: tuple[str, Any]) -> None:
        self._gc_queue.append(item)
        if self._gc_scheduled:
            return
        self._gc_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self._run_gc)
        except RuntimeError:
            self._run_gc()

    def _run_gc(self) -> None:
        try:
            while self._gc_queue:
                kind, arg = self._gc_queue.popleft()
                try:
                    if kind == "orphaned":
                        self._gc_orphaned(arg)
                    elif kind == "owner":
                        self._gc_owner(arg)
                    elif kind == "namespace":
                        self._gc_namespace(arg)
                except ApiError as e:
                    log.warning("garbage collection of %s %s: %s", kind, arg, e.message)
        finally:
            self._gc_scheduled = False

    def _type(self, key: ObjKey) -> ResourceType | None:
        return self.registry.by_key(key[0])

    def _gc_orphaned(self, key: ObjKey) -> None:
        """Delete a dependent all of whose owners are gone."""
        rt = self._type(key)
        obj = self.store.get(*key)
        if rt is None or obj is None or _is_deleting(obj):
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if refs and all(self.store.by_uid(str(r.get("uid"))) is None for r in refs):
            self._delete(rt, obj, "Background")

    def _gc_owner(self, uid: str) -> None:
        """Finish a foreground or orphan deletion of the owner `uid`."""
        key = self.store.by_uid(uid)
        rt = self._type(key) if key else None
        obj = self.store.get(*key) if key else None
        if rt is None or obj is None or not _is_deleting(obj):
            return
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if ORPHAN in finalizers:
            for dep_key in self.store.dependents(uid):
                dep_type, dep = self._type(dep_key), self.store.get(*dep_key)
                if dep_type is None or dep is None:
                    continue
                refs = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
                new = {**dep, "metadata": {**dep["metadata"], "ownerReferences": refs}}
                if not refs:
                    del new["metadata"]["ownerReferences"]
                self._commit_update(dep_type, dep, new, defaults=False, admit=False)
            finalizers.remove(ORPHAN)
        if FOREGROUND in finalizers:
            blocking = False
            for dep_key in self.store.dependents(uid):
                dep_type, dep = self._type(dep_key), self.store.get(*dep_key)
                if dep_type is None or dep is None:
                    continue
                if not _is_deleting(dep):
                    dep = self._delete(dep_type, dep, "Foreground")
                still_there = self.store.get(*dep_key) is not None
                blocks = any(
                    r.get("uid") == uid and r.get("blockOwnerDeletion")
                    for r in dep["metadata"].get("ownerReferences") or []
                )
                blocking = blocking or (still_there and blocks)
            if not blocking:
                finalizers.remove(FOREGROUND)
        if finalizers != obj["metadata"].get("finalizers"):
            new = {**obj, "metadata": {**obj["metadata"], "finalizers": finalizers}}
            self._commit_update(rt, obj, new, defaults=False, admit=False)

    def _gc_namespace(self, name: str) -> None:
        """Delete a terminating namespace's content; the namespace goes once it is empty."""
        ns_obj = self.store.get(NAMESPACES, "", name)
        ns_type = self.registry.by_key(NAMESPACES)
        if ns_obj is None or ns_type is None or not _is_deleting(ns_obj):
            return
        for key in self.store.keys_in_namespace(name):
            rt, obj = self._type(key), self.store.get(*key)
            if rt is not None and obj is not None and not _is_deleting(obj):
                self._delete(rt, obj, "Background")
        if self.store.namespace_count(name) == 0 and not ns_obj["metadata"].get("finalizers"):
            self._remove(ns_type, ns_obj)

    # ---- helpers for the in-process interface

    def apply(self, obj: Obj) -> Obj:
        """Create `obj`, or merge it into the existing object (what `kubectl apply` does without history)."""
        rt, _ = self.resolve(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default") if rt.namespaced else ""
        name = str(meta.get("name", ""))
        if not name or self.store.get(rt.key, ns, name) is None:
            return self.create(rt, ns, obj)
        patch = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
        result, _ = self.patch(rt, ns, name, PATCH_MERGE, json.dumps(patch).encode())
        return result

    def apply_status(self, obj: Obj) -> Obj:
        """Replace the status of an existing object, as a write to its status subresource would."""
        rt, _ = self.resolve(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default") if rt.namespaced else ""
        old = self.get(rt, ns, str(meta.get("name", "")))
        merged = self._merge_update(rt, old, {"status": clone(obj.get("status"))}, "status")
        if obj.get("status") is None:
            merged.pop("status", None)
        return self._commit_update(rt, old, merged, defaults=False)
