"""One leadership term's DPUServiceCredentialRequest work, as DPF's reconciler does it:

* the finalizer `dpu.nvidia.com/dpuservicecredentialrequest` first;
* in the target (the DPUCluster named by spec.targetCluster, else the host) the ServiceAccount, without token
  automount, and a TokenRequest for spec.duration (the API's default lifetime without one), only when there is no
  token yet, it is due for renewal (rotation.py) or spec.duration changed;
* in the host cluster the Opaque Secret spec.secret with the kubeconfig or token-file keys (secretdata.py) and
  spec.metadata's labels and annotations;
* status serviceAccount, targetCluster, expirationTimestamp, issuedAt and secret; ServiceAccountReconciled,
  SecretReconciled and the Ready summary; a requeue when the token is due;
* a renamed ServiceAccount, target or Secret: the old one deleted (a renamed Secret's data moves to the new one);
* deletion: the ServiceAccount (unless its DPUCluster is gone) and the Secret, then the finalizer.

Where this differs from DPF, on purpose: a ServiceAccount left behind by a change of target is deleted from the
cluster it is in (DPF asks the new target); a Secret that lost its data (deleted, or of the other type after a
change of spec.type) gets a new token at once (DPF rewrites it empty, or keeps the old type's keys, until the next
renewal); a token older than 24 hours is looked at when it turns 24 hours old, not at 80 % of its lifetime.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.credentials.access import AccessError, ClusterAccess, access_from_admin
from controller.credentials.conditions import error, status_patch, true
from controller.credentials.resources import (
    COND_SECRET,
    COND_SERVICE_ACCOUNT,
    CREDENTIAL_REQUESTS,
    DEFAULT_NAMESPACE,
    FINALIZER,
    SECRETS,
    SERVICE_ACCOUNTS,
)
from controller.credentials.rotation import lifetime, next_refresh, requires_refresh
from controller.credentials.secretdata import encode, has_keys_of, secret_data
from controller.dpucluster import DpuClusterError, DpuClusters
from controller.dpucluster.kubeconfig import KubeconfigError, parse_admin_secret
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import EventType, Informer
from controller.kube.objects import (
    Obj,
    ObjKey,
    describe,
    finalizer_patch,
    finalizers_of,
    generation_of,
    is_deleting,
    key_of,
    meta,
    uid_of,
)
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.reconcilers.provisioning import status_only_change
from dpfd.api.conditions import Condition
from dpfd.api.quantity import parse_duration

log = logging.getLogger(__name__)
KIND = CREDENTIAL_REQUESTS.kind
TOKEN_REQUEST_API_VERSION = "authentication.k8s.io/v1"
# Status fields this family owns (None removes one).
STATUS_FIELDS = ("serviceAccount", "targetCluster", "expirationTimestamp", "issuedAt", "secret")


class ReconcileError(Exception):
    """A step failed; the message is what the condition says after "Error occurred: "."""


def ref_string(ref: Any) -> str | None:
    """NamespacedName.String(): "<namespace or default>/<name>", None when there is no reference."""
    if not isinstance(ref, dict) or not ref.get("name"):
        return None
    return f"{ref.get('namespace') or DEFAULT_NAMESPACE}/{ref['name']}"


def split_ref(text: str | None) -> ObjKey | None:
    if not text or "/" not in text:
        return None
    namespace, _, name = text.partition("/")
    return ObjKey(namespace, name)


def parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_seconds(spec: Obj) -> int | None:
    """spec.duration in whole seconds (Go's Duration / time.Second), None when not given."""
    text = spec.get("duration")
    if not text:
        return None
    return int(parse_duration(str(text)))


@dataclass
class Target:
    """Where the ServiceAccount lives: the host (cluster None) or a DPU cluster."""

    client: KubeClient
    cluster: ObjKey | None = None

    def describe(self) -> str:
        return f"DPUCluster {self.cluster}" if self.cluster is not None else "the host cluster"


@dataclass
class Token:
    value: str
    expires: float
    issued: float


@dataclass
class Pass:
    """One reconcile's view of the request: its spec, the status being built, the conditions set so far."""

    obj: Obj
    spec: Obj
    status: dict[str, Any]
    conditions: list[Condition] = field(default_factory=list)

    @property
    def generation(self) -> int:
        return generation_of(self.obj)


class CredentialWork:
    def __init__(
        self,
        client: KubeClient,
        informer: Informer,
        clusters: Informer,
        cluster_access: DpuClusters | None,
        host_access: ClusterAccess | None,
        *,
        workers: int = 2,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """`informer` watches DPUServiceCredentialRequests, `clusters` DPUClusters; `host_access` is the host
        cluster's address and CA for Secrets of requests without a target (None: such requests fail with
        SecretReconciled False); `clock` and `jitter` (a draw from [0, 1)) drive renewal."""
        self.client = client
        self.informer = informer
        self.clusters = clusters
        self.access = cluster_access
        self.host_access = host_access
        self.clock = clock
        self.jitter = jitter
        self.queue: WorkQueue[ObjKey] = WorkQueue(KIND)
        self.workers = workers
        self.tokens_issued = 0
        self._written: dict[ObjKey, tuple[str, dict[str, Any]]] = {}  # per request: (uid, status fields)

    # -- targets ------------------------------------------------------------------------------------
    async def _cluster_target(self, key: ObjKey) -> Target | None:
        """The DPU cluster's admin client; None when the DPUCluster does not exist. Raises ReconcileError."""
        cluster = self.clusters.get(key.namespace, key.name)
        if cluster is None:
            return None
        if self.access is None:
            raise ReconcileError(f"error while getting client for cluster {key.name}: no access to DPU clusters")
        self.access.watch(cluster)
        try:
            return Target(await self.access.admin_client(key), key)
        except DpuClusterError as e:
            raise ReconcileError(f"error while getting client for cluster {key.name}: {e}") from e

    async def _target(self, ref: ObjKey | None) -> Target:
        if ref is None:
            return Target(self.client)
        target = await self._cluster_target(ref)
        if target is None:
            raise ReconcileError(
                f'error while getting DPU cluster {ref.name}: dpuclusters.provisioning.dpu.nvidia.com "{ref.name}" '
                "not found"
            )
        return target

    async def _cluster_access(self, ref: ObjKey | None) -> ClusterAccess:
        if ref is None:
            if self.host_access is None:
                raise ReconcileError("error while getting CA of the host cluster: the controller was given none")
            return self.host_access
        cluster = self.clusters.get(ref.namespace, ref.name)
        secret_name = str(((cluster or {}).get("spec") or {}).get("kubeconfig") or "")
        where = f"Secret {ref.namespace}/{secret_name}"
        try:
            secret = await self.client.get(SECRETS, ref.namespace, secret_name)
            return access_from_admin(parse_admin_secret(secret, where))
        except (ApiError, KubeconfigError, AccessError) as e:
            raise ReconcileError(f"error while getting kubeconfig for cluster {ref.name}: {e}") from e

    # -- reconcile ----------------------------------------------------------------------------------
    async def reconcile(self, key: ObjKey) -> Result:
        obj = self.informer.get(key.namespace, key.name)
        if obj is None:
            self._written.pop(key, None)
            return DONE
        if is_deleting(obj):
            return await self._finish_deletion(obj, key)
        if FINALIZER not in finalizers_of(obj):
            obj = await self.client.patch(CREDENTIAL_REQUESTS, key.namespace, key.name,
                                          finalizer_patch(obj, [*finalizers_of(obj), FINALIZER]))  # fmt: skip
        p = Pass(obj, obj.get("spec") or {}, self._status_fields(obj, key))
        try:
            token = await self._reconcile_service_account(p, key)
        except ReconcileError as e:
            p.conditions.append(error(COND_SERVICE_ACCOUNT, p.generation, str(e)))
            log.warning("ServiceAccount not reconciled", extra={"object": describe(KIND, key), "error": str(e)})
            await self._write_status(p, key)
            return Result(requeue=True)
        p.conditions.append(true(COND_SERVICE_ACCOUNT, p.generation))
        try:
            await self._reconcile_secret(p, token)
        except ReconcileError as e:
            p.conditions.append(error(COND_SECRET, p.generation, str(e)))
            log.warning("Secret not reconciled", extra={"object": describe(KIND, key), "error": str(e)})
            await self._write_status(p, key)
            return Result(requeue=True)
        p.conditions.append(true(COND_SECRET, p.generation))
        await self._write_status(p, key)
        expires, issued = parse_time(p.status["expirationTimestamp"]), parse_time(p.status["issuedAt"])
        if expires is None or issued is None:
            return Result(requeue=True)
        due = next_refresh(expires, issued, self.jitter())
        return Result(requeue_after=max(0.0, due - self.clock()))

    async def _reconcile_service_account(self, p: Pass, key: ObjKey) -> Token | None:
        """The ServiceAccount in the target and, when one is due, a new token for it."""
        spec_sa = ref_string(p.spec.get("serviceAccount"))
        spec_target_text = ref_string(p.spec.get("targetCluster"))
        spec_target = split_ref(spec_target_text)
        renamed = p.status["serviceAccount"] is not None and p.status["serviceAccount"] != spec_sa
        moved = p.status["serviceAccount"] is not None and p.status["targetCluster"] != spec_target_text
        if renamed or moved:
            await self._delete_service_account(p, key)
        target = await self._target(spec_target)
        if not await self._token_due(p):
            p.status["serviceAccount"], p.status["targetCluster"] = spec_sa, spec_target_text
            return None
        sa_key = split_ref(spec_sa)
        assert sa_key is not None
        token = await self._issue(target, sa_key, duration_seconds(p.spec))
        p.status["serviceAccount"], p.status["targetCluster"] = spec_sa, spec_target_text
        p.status["expirationTimestamp"], p.status["issuedAt"] = rfc3339(token.expires), rfc3339(token.issued)
        log.info("token issued", extra={"object": describe(KIND, key), "serviceAccount": spec_sa,
                                        "target": target.describe(), "expires": p.status["expirationTimestamp"]})  # fmt: skip
        return token

    async def _token_due(self, p: Pass) -> bool:
        expires, issued = parse_time(p.status["expirationTimestamp"]), parse_time(p.status["issuedAt"])
        if expires is None or issued is None or p.status["serviceAccount"] is None:
            return True
        if requires_refresh(expires, issued, self.clock(), self.jitter()):
            return True
        wanted = duration_seconds(p.spec)
        if wanted is not None and wanted != lifetime(expires, issued):
            return True
        return not await self._secret_has_data(p)

    async def _secret_has_data(self, p: Pass) -> bool:
        """Whether the Secret (the old one, when renamed: its data moves) holds the keys of spec.type."""
        held = split_ref(p.status["secret"]) if p.status["secret"] is not None else None
        where = held or split_ref(ref_string(p.spec.get("secret")))
        if where is None:
            return False
        try:
            secret = await self.client.get(SECRETS, where.namespace, where.name)
        except ApiError as e:
            if e.not_found:
                return False
            raise ReconcileError(f"error while getting Secret {where}: {e}") from e
        return has_keys_of(str(p.spec.get("type") or ""), secret.get("data"))

    async def _issue(self, target: Target, sa_key: ObjKey, duration: int | None) -> Token:
        try:
            await self._apply_service_account(target.client, sa_key)
        except ApiError as e:
            raise ReconcileError(f"error while patching ServiceAccount on target: {e}") from e
        body: Obj = {"apiVersion": TOKEN_REQUEST_API_VERSION, "kind": "TokenRequest", "spec": {}}
        if duration is not None:
            body["spec"]["expirationSeconds"] = duration
        try:
            answer = await target.client.create_subresource(SERVICE_ACCOUNTS, sa_key.namespace, sa_key.name,
                                                            "token", body)  # fmt: skip
        except ApiError as e:
            raise ReconcileError(str(e)) from e
        status, spec = answer.get("status") or {}, answer.get("spec") or {}
        expires = parse_time(status.get("expirationTimestamp"))
        seconds = spec.get("expirationSeconds")
        if not status.get("token") or expires is None or not isinstance(seconds, int):
            raise ReconcileError(f"the TokenRequest for ServiceAccount {sa_key} was answered without a token")
        self.tokens_issued += 1
        # issuedAt as DPF works it out: the expiry less the lifetime the API granted
        return Token(str(status["token"]), expires, expires - seconds)

    @staticmethod
    async def _apply_service_account(client: KubeClient, sa_key: ObjKey) -> None:
        """The ServiceAccount with automountServiceAccountToken false (the token is not for pods)."""
        try:
            sa = await client.get(SERVICE_ACCOUNTS, sa_key.namespace, sa_key.name)
        except ApiError as e:
            if not e.not_found:
                raise
            sa = None
        if sa is None:
            await client.create(SERVICE_ACCOUNTS, {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": sa_key.name, "namespace": sa_key.namespace},
                "automountServiceAccountToken": False,
            })  # fmt: skip
        elif sa.get("automountServiceAccountToken") is not False:
            await client.patch(SERVICE_ACCOUNTS, sa_key.namespace, sa_key.name, {"automountServiceAccountToken": False})

    async def _delete_service_account(self, p: Pass, key: ObjKey) -> None:
        """Delete the ServiceAccount the status names, from the cluster the status names; clear those fields."""
        sa_key = split_ref(p.status["serviceAccount"])
        old_cluster = split_ref(p.status["targetCluster"])
        target = Target(self.client) if old_cluster is None else await self._cluster_target(old_cluster)
        if target is None:
            log.info("DPUCluster does not exist: skipping ServiceAccount cleanup",
                     extra={"object": describe(KIND, key), "cluster": str(old_cluster)})  # fmt: skip
        elif sa_key is not None:
            try:
                await target.client.delete(SERVICE_ACCOUNTS, sa_key.namespace, sa_key.name)
            except ApiError as e:
                if not e.not_found:
                    raise ReconcileError(f"error while deleting ServiceAccount {sa_key}: {e}") from e
            log.info("ServiceAccount deleted", extra={"object": describe(KIND, key), "serviceAccount": str(sa_key),
                                                      "target": target.describe()})  # fmt: skip
        for name in ("serviceAccount", "targetCluster", "expirationTimestamp", "issuedAt"):
            p.status[name] = None

    async def _delete_secret(self, p: Pass) -> dict[str, str] | None:
        """Delete the Secret the status names and clear the field; its data, to move to a renamed Secret."""
        where = split_ref(p.status["secret"])
        data: dict[str, str] | None = None
        if where is not None:
            try:
                old = await self.client.get(SECRETS, where.namespace, where.name)
                data = old.get("data")
                await self.client.delete(SECRETS, where.namespace, where.name)
            except ApiError as e:
                if not e.not_found:
                    raise ReconcileError(f"error while deleting Secret {where}: {e}") from e
        p.status["secret"] = None
        return data

    async def _reconcile_secret(self, p: Pass, token: Token | None) -> None:
        spec_secret = ref_string(p.spec.get("secret"))
        where = split_ref(spec_secret)
        assert where is not None
        data: dict[str, str] | None = None
        if p.status["secret"] is not None and p.status["secret"] != spec_secret:
            data = await self._delete_secret(p)
        if token is not None:
            access = await self._cluster_access(split_ref(p.status["targetCluster"]))
            sa_key = split_ref(p.status["serviceAccount"])
            assert sa_key is not None
            kind = str(p.spec.get("type") or "")
            try:
                data = encode(secret_data(kind, access, sa_key.namespace, sa_key.name, token.value))
            except ValueError as e:
                raise ReconcileError(str(e)) from e
        try:
            await self._write_secret(where, data, p.spec.get("metadata") or {})
        except ApiError as e:
            raise ReconcileError(str(e)) from e
        p.status["secret"] = spec_secret

    async def _write_secret(self, where: ObjKey, data: dict[str, str] | None, template: Obj) -> None:
        """Create the Opaque Secret, or bring its data, labels and annotations to what they should be (data None:
        keep what it holds)."""
        labels, annotations = template.get("labels") or None, template.get("annotations") or None
        try:
            current: Obj | None = await self.client.get(SECRETS, where.namespace, where.name)
        except ApiError as e:
            if not e.not_found:
                raise
            current = None
        if current is None:
            secret_meta: Obj = {"name": where.name, "namespace": where.namespace}
            if labels:
                secret_meta["labels"] = labels
            if annotations:
                secret_meta["annotations"] = annotations
            secret: Obj = {"apiVersion": "v1", "kind": "Secret", "metadata": secret_meta, "type": "Opaque"}
            if data:
                secret["data"] = data
            await self.client.create(SECRETS, secret)
            return
        patch: Obj = {}
        if data is not None and current.get("data") != data:
            patch["data"] = {**{k: None for k in current.get("data") or {} if k not in data}, **data}
        current_meta = meta(current)
        meta_patch = {name: wanted for name, wanted in (("labels", labels), ("annotations", annotations))
                      if wanted and any((current_meta.get(name) or {}).get(k) != v for k, v in wanted.items())}  # fmt: skip
        if meta_patch:
            patch["metadata"] = meta_patch
        if patch:
            await self.client.patch(SECRETS, where.namespace, where.name, patch)

    async def _finish_deletion(self, obj: Obj, key: ObjKey) -> Result:
        if FINALIZER not in finalizers_of(obj):
            return DONE
        p = Pass(obj, obj.get("spec") or {}, self._status_fields(obj, key))
        if p.status["serviceAccount"] is not None:
            await self._delete_service_account(p, key)
        await self._delete_secret(p)
        keep = [f for f in finalizers_of(obj) if f != FINALIZER]
        try:
            await self.client.patch_no_result(CREDENTIAL_REQUESTS, key.namespace, key.name, finalizer_patch(obj, keep))
        except ApiError as e:
            if not e.not_found:
                raise
        log.info("ServiceAccount and Secret deleted; finalizer removed", extra={"object": describe(KIND, key)})
        return DONE

    def _status_fields(self, obj: Obj, key: ObjKey) -> dict[str, Any]:
        """The status fields this family keeps: as last written here for this incarnation, else as cached. Only
        this controller writes them, and the cache may not have caught up with its last write (renewing again on
        a stale cache would issue a second token)."""
        written = self._written.get(key)
        if written is not None and written[0] == uid_of(obj):
            return dict(written[1])
        current = obj.get("status") or {}
        return {k: current.get(k) for k in STATUS_FIELDS}

    async def _write_status(self, p: Pass, key: ObjKey) -> None:
        wanted = status_patch(p.obj, p.conditions, dict(p.status))
        gone = wanted is not None and not await self.client.patch_status(
            CREDENTIAL_REQUESTS, key.namespace, key.name, wanted
        )
        if gone:
            self._written.pop(key, None)
            return
        self._written[key] = (uid_of(p.obj), dict(p.status))

    # -- cache events -------------------------------------------------------------------------------
    def on_object(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and status_only_change(old, obj):
            return  # our own status write
        self.queue.add(key_of(obj))

    def on_cluster(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        """A DPUCluster came, changed or went: the requests that target it (or did) try again."""
        cluster = f"{key_of(obj).namespace}/{key_of(obj).name}"
        for request in self.informer.list():
            status = request.get("status") or {}
            if cluster in (ref_string((request.get("spec") or {}).get("targetCluster")), status.get("targetCluster")):
                self.queue.add(key_of(request))

    def enqueue_all(self) -> None:
        for key in self.informer.list_keys():
            self.queue.add(key)

    def busy(self) -> bool:
        return not self.queue.idle()

    async def run(self) -> None:
        try:
            await run_workers(self.queue, self.reconcile, self.workers, lambda k: describe(KIND, k))
        finally:
            self.shut_down()

    def shut_down(self) -> None:
        self.queue.shut_down()
