"""One leadership term's DPFOperatorConfig work, after DPF's DPFOperatorConfig controller
(internal/operator/controllers/dpfoperatorconfig_controller.go):

* paused: nothing is touched (the manager stops every other family); Ready says Paused;
* imagePullSecrets: the listed Secrets of the operator namespace get the label dpu.nvidia.com/image-pull-secret,
  other labelled Secrets there lose it. The DPUService family mirrors labelled Secrets into every DPU cluster, so the
  system DPUServices' images can be pulled there;
* system DPUServices (system_services.py): flannel, multus and sriov-device-plugin as DPUServices in the config's
  namespace, unless disabled; SystemComponentsReconciled says they are written (the families this config leaves on
  run in this controller, plan.py), SystemComponentsReady that each is Ready (its Applications synced and healthy);
* status.observedGeneration and the Ready summary.

It runs whatever the plan says: it is how a paused installation is unpaused and shows that it is paused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from controller.chains.status import status_patch
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import EventType, Informer
from controller.kube.objects import Obj, ObjKey, condition_true, describe, key_of, labels_of, name_of
from controller.kube.resources import SECRETS
from controller.object_work import ObjectWork
from controller.operatorconfig import status as st
from controller.operatorconfig.plan import is_paused, spec_of
from controller.operatorconfig.system_services import (
    DEFAULT_DPU_NETWORKING_CHART,
    ChartError,
    is_system_service,
    system_dpuservices,
)
from controller.queue import DONE, Result
from controller.reconcilers.provisioning import status_only_change
from controller.services.apply import apply, delete_if_present
from controller.services.resources import COMPONENT_LABEL, DPFOPERATORCONFIGS, DPUSERVICES
from dpfd.api.conditions import Condition
from dpfd.api.wellknown import IMAGE_PULL_SECRET_LABEL

log = logging.getLogger(__name__)
KIND = DPFOPERATORCONFIGS.kind
READY_POLL = 30.0  # a safety net: a system DPUService's status change enqueues the config at once


def pull_secret_names(config: Obj) -> list[str]:
    names = spec_of(config).get("imagePullSecrets") or []
    return sorted({n for n in names if isinstance(n, str) and n})


class OperatorConfigWork(ObjectWork):
    """Reconciles the installation's DPFOperatorConfig (informer `configs`, all namespaces)."""

    def __init__(
        self, client: KubeClient, configs: Informer, *, dpu_networking_chart: str = DEFAULT_DPU_NETWORKING_CHART
    ) -> None:
        self.client = client
        self.configs = configs
        self.dpu_networking_chart = dpu_networking_chart
        super().__init__(KIND, workers=1)
        self.status_patches = 0

    async def reconcile(self, key: ObjKey) -> Result:
        config = self.configs.get(key.namespace, key.name)
        if config is None or (config.get("metadata") or {}).get("deletionTimestamp"):
            return DONE
        count = len(self.configs.list())
        if count != 1:
            await self._write_status(config, [st.not_the_only_one(config, count)])
            return DONE  # another config's deletion enqueues this one again
        if is_paused(config):
            await self._write_status(config, [st.paused(config)])
            log.info("reconciliation is paused", extra={"object": describe(KIND, key)})
            return DONE
        conds: list[Condition] = []
        result = DONE
        try:
            await self._label_pull_secrets(config)
            conds.append(st.cond(config, st.IMAGE_PULL_SECRETS_RECONCILED, True))
        except ApiError as exc:
            message = f"ImagePullSecrets must be reconciled for DPF Operator to continue:\n* {exc}"
            conds.append(st.cond(config, st.IMAGE_PULL_SECRETS_RECONCILED, False, st.REASON_ERROR, message))
            result = Result(requeue=True)  # a Secret created later is found by the retry
        try:
            unready = await self._system_services(config)
        except (ChartError, ApiError) as exc:
            message = f"System components must be reconciled for DPF Operator to continue:\n* {exc}"
            conds.append(st.cond(config, st.SYSTEM_COMPONENTS_RECONCILED, False, st.REASON_ERROR, message))
            conds.append(st.cond(config, st.SYSTEM_COMPONENTS_READY, False, st.REASON_PENDING))
            result = DONE if isinstance(exc, ChartError) else Result(requeue=True)  # a bad chart waits for an edit
        else:
            conds.append(st.cond(config, st.SYSTEM_COMPONENTS_RECONCILED, True))
            if unready:
                message = ", ".join(f"DPUService {n} is not ready" for n in unready)
                conds.append(st.cond(config, st.SYSTEM_COMPONENTS_READY, False, st.REASON_PENDING, message))
                if result is DONE:
                    result = Result(requeue_after=READY_POLL)
            else:
                conds.append(st.cond(config, st.SYSTEM_COMPONENTS_READY, True))
        await self._write_status(config, [st.summary(config, conds), *conds])
        return result

    async def _system_services(self, config: Obj) -> list[str]:
        """Bring the system DPUServices to what the config asks for; the names of those not Ready yet."""
        wanted = system_dpuservices(config, self.dpu_networking_chart)
        for obj in wanted:
            if await apply(self.client, DPUSERVICES, obj):
                log.info("system DPUService written", extra={"object": describe("DPUService", key_of(obj))})
        namespace = key_of(config).namespace
        existing, _ = await self.client.list(DPUSERVICES, namespace, label_selector=COMPONENT_LABEL)
        by_name = {name_of(o): o for o in existing}
        for name, obj in by_name.items():
            if is_system_service(obj) and name not in {name_of(w) for w in wanted}:
                await delete_if_present(self.client, DPUSERVICES, namespace, name)  # its component was disabled
                log.info("system DPUService deleted", extra={"object": describe("DPUService", key_of(obj))})
        return [name_of(w) for w in wanted if not condition_true(by_name.get(name_of(w)), "Ready")]

    async def _label_pull_secrets(self, config: Obj) -> None:
        """DPF's reconcileImagePullSecrets: label the listed Secrets, unlabel the others that carry the label."""
        namespace = key_of(config).namespace
        wanted = pull_secret_names(config)
        for name in wanted:
            secret = await self.client.get(SECRETS, namespace, name)
            if IMAGE_PULL_SECRET_LABEL not in labels_of(secret):
                patch = {"metadata": {"labels": {IMAGE_PULL_SECRET_LABEL: ""}}}
                await self.client.patch_no_result(SECRETS, namespace, name, patch)
                log.info("labelled an image pull Secret", extra={"object": describe("Secret", key_of(secret))})
        labelled, _ = await self.client.list(SECRETS, namespace, label_selector=IMAGE_PULL_SECRET_LABEL)
        for secret in labelled:
            if name_of(secret) in wanted:
                continue
            try:
                unlabel: dict[str, object] = {"metadata": {"labels": {IMAGE_PULL_SECRET_LABEL: None}}}
                await self.client.patch_no_result(SECRETS, namespace, name_of(secret), unlabel)
            except ApiError as exc:
                if not exc.not_found:
                    raise

    async def _write_status(self, config: Obj, conditions: Iterable[Condition]) -> None:
        wanted = status_patch(config, list(conditions))
        if wanted is None:
            return
        key = key_of(config)
        if await self.client.patch_status(DPFOPERATORCONFIGS, key.namespace, key.name, wanted):
            self.status_patches += 1

    # -- cache events -------------------------------------------------------------------------------
    def on_config(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and status_only_change(old, obj):
            return  # our own status write
        self.enqueue_all()  # the count matters to every config

    def on_dpuservice(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if is_system_service(obj):
            self.enqueue_all()  # its Ready is the config's SystemComponentsReady; its deletion may need undoing

    def enqueue_all(self) -> None:
        for key in self.configs.list_keys():
            self.queue.add(key)
