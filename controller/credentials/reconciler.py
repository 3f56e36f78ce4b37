"""One DPUServiceCredentialRequest reconciled, as DPF v24.10's reconciler does it:

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

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.credentials.accounts import Token, delete_service_account, issue_token
from controller.credentials.conditions import error, status_patch, true
from controller.credentials.credential_secret import delete_secret, read_secret, write_secret
from controller.credentials.refs import duration_seconds, parse_time, ref_string, rfc3339, split_ref
from controller.credentials.resources import COND_SECRET, COND_SERVICE_ACCOUNT, CREDENTIAL_REQUESTS, FINALIZER
from controller.credentials.rotation import lifetime, next_refresh, requires_refresh
from controller.credentials.secretdata import encode, has_keys_of, secret_data
from controller.credentials.targets import ReconcileError, Target, Targets
from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import (
    Obj,
    ObjKey,
    describe,
    finalizer_patch,
    finalizers_of,
    generation_of,
    is_deleting,
    uid_of,
)
from controller.queue import DONE, Result
from dpfd.api.conditions import Condition

log = logging.getLogger(__name__)
KIND = CREDENTIAL_REQUESTS.kind
# Status fields this family owns (None removes one).
STATUS_FIELDS = ("serviceAccount", "targetCluster", "expirationTimestamp", "issuedAt", "secret")


@dataclass
class Pass:
    """One reconcile's view of the request: its spec, the status being built, the conditions set so far."""

    obj: Obj
    key: ObjKey
    status: dict[str, Any]
    conditions: list[Condition] = field(default_factory=list)

    @property
    def spec(self) -> Obj:
        return dict(self.obj.get("spec") or {})

    @property
    def generation(self) -> int:
        return generation_of(self.obj)


class CredentialReconciler:
    def __init__(self, client: KubeClient, targets: Targets, clock: Callable[[], float],
                 jitter: Callable[[], float]) -> None:  # fmt: skip
        self.client = client
        self.targets = targets
        self.clock = clock
        self.jitter = jitter
        self.tokens_issued = 0
        self._written: dict[ObjKey, tuple[str, dict[str, Any]]] = {}  # per request: (uid, status fields)

    async def reconcile(self, key: ObjKey, obj: Obj | None) -> Result:
        """`obj` is the request as cached (None: gone)."""
        if obj is None:
            self._written.pop(key, None)
            return DONE
        if is_deleting(obj):
            return await self._finish_deletion(obj, key)
        if FINALIZER not in finalizers_of(obj):
            obj = await self.client.patch(CREDENTIAL_REQUESTS, key.namespace, key.name,
                                          finalizer_patch(obj, [*finalizers_of(obj), FINALIZER]))  # fmt: skip
        p = Pass(obj, key, self._status_fields(obj, key))
        try:
            token = await self._reconcile_service_account(p)
        except ReconcileError as e:
            return await self._failed(p, COND_SERVICE_ACCOUNT, e)
        p.conditions.append(true(COND_SERVICE_ACCOUNT, p.generation))
        try:
            await self._reconcile_secret(p, token)
        except ReconcileError as e:
            return await self._failed(p, COND_SECRET, e)
        p.conditions.append(true(COND_SECRET, p.generation))
        await self._write_status(p)
        expires, issued = parse_time(p.status["expirationTimestamp"]), parse_time(p.status["issuedAt"])
        if expires is None or issued is None:
            return Result(requeue=True)
        due = next_refresh(expires, issued, self.jitter())
        return Result(requeue_after=max(0.0, due - self.clock()))

    async def _failed(self, p: Pass, condition: str, e: ReconcileError) -> Result:
        p.conditions.append(error(condition, p.generation, str(e)))
        log.warning(f"{condition} False", extra={"object": describe(KIND, p.key), "error": str(e)})
        await self._write_status(p)
        return Result(requeue=True)

    # -- the ServiceAccount and its token -------------------------------------------------------------
    async def _reconcile_service_account(self, p: Pass) -> Token | None:
        """The ServiceAccount in the target and, when one is due, a new token for it."""
        spec_sa = ref_string(p.spec.get("serviceAccount"))
        spec_target = ref_string(p.spec.get("targetCluster"))
        target = await self.targets.target(split_ref(spec_target))  # first, as DPF: a bad target changes nothing
        held = p.status["serviceAccount"]
        if held is not None and (held != spec_sa or p.status["targetCluster"] != spec_target):
            await self._delete_service_account(p)
        due = await self._token_due(p)
        p.status["serviceAccount"], p.status["targetCluster"] = spec_sa, spec_target
        if not due:
            return None
        sa_key = split_ref(spec_sa)
        assert sa_key is not None  # the CRD requires serviceAccount.name
        token = await issue_token(target.client, sa_key, duration_seconds(p.spec))
        self.tokens_issued += 1
        p.status["expirationTimestamp"], p.status["issuedAt"] = rfc3339(token.expires), rfc3339(token.issued)
        log.info("token issued", extra={"object": describe(KIND, p.key), "serviceAccount": spec_sa,
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
        # the Secret holding the token (the old one when renamed: its data moves) must still hold it
        where = split_ref(p.status["secret"]) or split_ref(ref_string(p.spec.get("secret")))
        secret = await read_secret(self.client, where) if where is not None else None
        return secret is None or not has_keys_of(str(p.spec.get("type") or ""), secret.get("data"))

    async def _delete_service_account(self, p: Pass) -> None:
        """Delete the ServiceAccount the status names, from the cluster the status names; clear those fields."""
        sa_key = split_ref(p.status["serviceAccount"])
        old_cluster = split_ref(p.status["targetCluster"])
        target = Target(self.client) if old_cluster is None else await self.targets.cluster(old_cluster)
        if target is None:
            log.info("DPUCluster does not exist: skipping ServiceAccount cleanup",
                     extra={"object": describe(KIND, p.key), "cluster": str(old_cluster)})  # fmt: skip
        elif sa_key is not None:
            await delete_service_account(target.client, sa_key)
            log.info("ServiceAccount deleted", extra={"object": describe(KIND, p.key), "serviceAccount": str(sa_key),
                                                      "target": target.describe()})  # fmt: skip
        for name in ("serviceAccount", "targetCluster", "expirationTimestamp", "issuedAt"):
            p.status[name] = None

    # -- the Secret -----------------------------------------------------------------------------------
    async def _reconcile_secret(self, p: Pass, token: Token | None) -> None:
        spec_secret = ref_string(p.spec.get("secret"))
        where = split_ref(spec_secret)
        assert where is not None  # the CRD requires secret.name
        data: dict[str, str] | None = None
        held = split_ref(p.status["secret"])
        if held is not None and held != where:
            data = await delete_secret(self.client, held)
            p.status["secret"] = None
        if token is not None:
            access = await self.targets.access_data(split_ref(p.status["targetCluster"]))
            sa_key = split_ref(p.status["serviceAccount"])
            assert sa_key is not None
            try:
                data = encode(secret_data(str(p.spec.get("type") or ""), access, sa_key.namespace, sa_key.name,
                                          token.value))  # fmt: skip
            except ValueError as e:
                raise ReconcileError(str(e)) from e
        await write_secret(self.client, where, data, p.spec.get("metadata") or {})
        p.status["secret"] = spec_secret

    # -- deletion -------------------------------------------------------------------------------------
    async def _finish_deletion(self, obj: Obj, key: ObjKey) -> Result:
        if FINALIZER not in finalizers_of(obj):
            return DONE
        p = Pass(obj, key, self._status_fields(obj, key))
        if p.status["serviceAccount"] is not None:
            await self._delete_service_account(p)
        held = split_ref(p.status["secret"])
        if held is not None:
            await delete_secret(self.client, held)
        keep = [f for f in finalizers_of(obj) if f != FINALIZER]
        try:
            await self.client.patch_no_result(CREDENTIAL_REQUESTS, key.namespace, key.name, finalizer_patch(obj, keep))
        except ApiError as e:
            if not e.not_found:
                raise
        self._written.pop(key, None)
        log.info("ServiceAccount and Secret deleted; finalizer removed", extra={"object": describe(KIND, key)})
        return DONE

    # -- status ---------------------------------------------------------------------------------------
    def _status_fields(self, obj: Obj, key: ObjKey) -> dict[str, Any]:
        """The status fields this family keeps: as last written here for this incarnation, else as cached. Only
        this controller writes them, and the cache may not have caught up with its last write (renewing again on
        a stale cache would issue a second token)."""
        written = self._written.get(key)
        if written is not None and written[0] == uid_of(obj):
            return dict(written[1])
        current = obj.get("status") or {}
        return {k: current.get(k) for k in STATUS_FIELDS}

    async def _write_status(self, p: Pass) -> None:
        wanted = status_patch(p.obj, p.conditions, dict(p.status))
        gone = wanted is not None and not await self.client.patch_status(
            CREDENTIAL_REQUESTS, p.key.namespace, p.key.name, wanted
        )
        if gone:
            self._written.pop(p.key, None)
            return
        self._written[p.key] = (uid_of(p.obj), dict(p.status))
