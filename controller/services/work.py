"""One leadership term's DPUService work, in the controller-runtime `Reconcile(key)` model of DPF's DPUService
controller (internal/dpuservice/controllers/dpuservice_controller.go, v24.10):

* the finalizer dpu.nvidia.com/dpuservice;
* interfaces: each named DPUServiceInterface checked and claimed, turned into Multus network annotations;
* prerequisites: the DPUService's namespace in every DPU cluster (or the host for deployInCluster), an ArgoCD
  cluster Secret per DPUCluster, the two AppProjects, labelled image-pull Secrets mirrored into every DPU cluster
  (and orphans there removed);
* one Application per DPU cluster `<cluster>-<dpuservice>` (or one to "in-cluster"), stale ones deleted;
  `paused` marks the existing Applications argocd.argoproj.io/skip-reconcile=true and stops there;
* beyond DPF, a change reaches the existing Applications under a maxUnavailable budget (controller.services.rollout),
  reported in the RolloutProgressing condition;
* status: ApplicationsReady from the Applications' Synced+Healthy, and the Ready summary;
* deletion: the Applications deleted (and unpaused), the finalizer held until they are gone, then the interface
  claims released and, with the namespace's last DPUService, the mirrored pull Secrets removed.

Everything DPF reads from the single DPFOperatorConfig (the namespace of the Applications, Secrets and AppProjects,
the owner of the latter two) is read from the DPFOperatorConfig informer.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Iterable

import yaml
from pydantic import ValidationError

from controller.chains.setobjects import merge_patch_to
from controller.chains.status import status_patch
from controller.dpucluster import DpuClusters
from controller.dpucluster.kubeconfig import parse_admin_secret
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import EventType, Handler, Informer
from controller.kube.objects import (
    Obj,
    ObjKey,
    annotations_of,
    describe,
    finalizer_patch,
    finalizers_of,
    is_deleting,
    key_of,
    labels_of,
    name_of,
    namespace_of,
    resource_version_of,
)
from controller.kube.resources import SECRETS
from controller.object_work import ObjectWork
from controller.queue import DONE, Result
from controller.reconcilers.provisioning import status_only_change
from controller.services import argocd
from controller.services.apply import apply, delete_if_present, ensure_namespace
from controller.services.interfaces import InterfaceProblem, plan_interfaces
from controller.services.resources import (
    APPLICATIONS,
    APPPROJECTS,
    DPUSERVICES,
    IN_CLUSTER,
    PROJECT_DPU,
    SKIP_RECONCILE,
)
from controller.services.rollout import RolloutPlan, budget_of, plan_rollout, rollout_condition
from controller.services.status import (
    APPS_READY,
    APPS_RECONCILED,
    INTERFACES_RECONCILED,
    OWN_CONDITIONS,
    PREREQS_RECONCILED,
    READY,
    REASON_AWAITING_DELETION,
    REASON_ERROR,
    ROLLOUT_PROGRESSING,
    applications_ready,
    cond,
    pending,
    summary,
)
from dpfd.api.conditions import Condition
from dpfd.api.validation import parse_object
from dpfd.api.wellknown import (
    CONSUMED_BY_ANNOTATION,
    DPUCLUSTER_LABEL,
    DPUSERVICE_NAME,
    DPUSERVICE_NAMESPACE,
    FINALIZER_DPUSERVICE,
    IMAGE_PULL_SECRET_LABEL,
)

log = logging.getLogger(__name__)
KIND = DPUSERVICES.kind
SERVICE_INDEX = "dpuservice"  # Applications by "<namespace>/<name>" of their DPUService
INTERFACE_INDEX = "dpuserviceinterface"  # DPUServices by "<namespace>/<interface name>" they use
DELETION_POLL = 30.0  # DPF requeues a deleting DPUService this often while its Applications go


def _service_of_app(app: Obj) -> list[str]:
    labels = labels_of(app)
    name, ns = labels.get(DPUSERVICE_NAME), labels.get(DPUSERVICE_NAMESPACE)
    return [f"{ns}/{name}"] if name and ns is not None else []


def _interfaces_of(service: Obj) -> list[str]:
    names = argocd.spec_of(service).get("interfaces") or []
    return [f"{namespace_of(service)}/{n}" for n in names if isinstance(n, str)]


class ServiceWork(ObjectWork):
    """Reconciles DPUServices. Informers (host cluster): `services` DPUServices, `applications` ArgoCD Applications
    (all namespaces), `clusters` DPUClusters, `interfaces` DPUServiceInterfaces, `operator_configs`
    DPFOperatorConfigs. `cluster_access` reaches the DPU clusters (None: nothing is written into them)."""

    def __init__(
        self,
        client: KubeClient,
        services: Informer,
        applications: Informer,
        clusters: Informer,
        interfaces: Informer,
        operator_configs: Informer,
        cluster_access: DpuClusters | None,
        *,
        workers: int = 2,
        deletion_poll: float = DELETION_POLL,
    ) -> None:
        self.client = client
        self.services = services
        self.applications = applications
        self.clusters = clusters
        self.interfaces = interfaces
        self.operator_configs = operator_configs
        self.access = cluster_access
        super().__init__(KIND, workers)
        self.deletion_poll = deletion_poll
        self.status_patches = 0
        applications.add_index(SERVICE_INDEX, _service_of_app)
        services.add_index(INTERFACE_INDEX, _interfaces_of)

    # -- inputs -------------------------------------------------------------------------------------
    def _apps_of(self, key: ObjKey) -> list[Obj]:
        return self.applications.by_index(SERVICE_INDEX, f"{key.namespace}/{key.name}")

    def _operator_config(self) -> tuple[Obj | None, str]:
        configs = self.operator_configs.list()
        if len(configs) != 1:
            return None, f"exactly one DPFOperatorConfig necessary, found {len(configs)}"
        return configs[0], ""

    def _live_clusters(self) -> list[Obj]:
        return sorted((c for c in self.clusters.list() if not is_deleting(c)), key=name_of)

    def _destinations(self, service: Obj) -> list[str]:
        if argocd.project_name(service) != PROJECT_DPU:
            return [IN_CLUSTER]
        return [name_of(c) for c in self._live_clusters()]

    async def _dpu_client(self, cluster: Obj) -> KubeClient:
        assert self.access is not None
        self.access.watch(cluster)
        return await self.access.admin_client(key_of(cluster))

    # -- reconcile ----------------------------------------------------------------------------------
    async def reconcile(self, key: ObjKey) -> Result:
        obj = self.services.get(key.namespace, key.name)
        if obj is None:
            return DONE
        if is_deleting(obj):
            return await self._delete(obj, key)
        if FINALIZER_DPUSERVICE not in finalizers_of(obj):
            patch = finalizer_patch(obj, [*finalizers_of(obj), FINALIZER_DPUSERVICE])
            obj = await self.client.patch(DPUSERVICES, key.namespace, key.name, patch)
        conds = {c: pending(obj, c) for c in OWN_CONDITIONS if c != READY}
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") in conds:
                with contextlib.suppress(ValidationError):
                    conds[c["type"]] = Condition.model_validate(c)
        result = await self._reconcile(obj, key, conds)
        conds[APPS_READY] = applications_ready(obj, self._apps_of(key), len(self._destinations(obj)))
        await self._write_status(obj, key, conds.values())
        return result

    async def _reconcile(self, obj: Obj, key: ObjKey, conds: dict[str, Condition]) -> Result:
        try:
            parse_object(obj)  # what DPF's CRD schema and webhooks would refuse
        except (ValueError, ValidationError) as exc:
            conds[APPS_RECONCILED] = cond(obj, APPS_RECONCILED, False, REASON_ERROR, f"invalid spec: {exc}")
            return DONE
        operator, problem = self._operator_config()
        if operator is None:
            conds[PREREQS_RECONCILED] = cond(obj, PREREQS_RECONCILED, False, REASON_ERROR, problem)
            return DONE  # a DPFOperatorConfig event enqueues every DPUService again
        namespace = namespace_of(operator)
        if argocd.is_paused(obj):
            await self._pause(obj, namespace)
            log.info("reconciliation is paused", extra={"object": describe(KIND, key)})
            return DONE
        try:
            plan = plan_interfaces(obj, lambda n: self.interfaces.get(key.namespace, n))
            for name in plan.to_claim:
                await self._claim_interface(obj, name)
        except (InterfaceProblem, ApiError) as exc:
            message = f"Unable to reconcile interfaces for {exc}"
            conds[INTERFACES_RECONCILED] = cond(obj, INTERFACES_RECONCILED, False, REASON_ERROR, message)
            return Result(requeue=isinstance(exc, ApiError))  # a DPUServiceInterface event enqueues it again
        conds[INTERFACES_RECONCILED] = cond(obj, INTERFACES_RECONCILED, True)
        errors = await self._prereqs(obj, operator)
        if errors:
            message = "Unable to reconcile application prereq for " + "; ".join(errors)
            conds[PREREQS_RECONCILED] = cond(obj, PREREQS_RECONCILED, False, REASON_ERROR, message)
            return Result(requeue=True)
        conds[PREREQS_RECONCILED] = cond(obj, PREREQS_RECONCILED, True)
        try:
            values = argocd.helm_values(obj, plan.service_daemonset)
            stale, rollout = await self._applications(obj, key, namespace, values)
        except ApiError as exc:
            message = f"Unable to reconcile Applications: {exc}"
            conds[APPS_RECONCILED] = cond(obj, APPS_RECONCILED, False, REASON_ERROR, message)
            return Result(requeue=True)
        if stale:
            message = "Stale applications still exist for non matching DPUClusters: " + ", ".join(stale)
            conds[APPS_RECONCILED] = cond(obj, APPS_RECONCILED, False, REASON_ERROR, message)
            return DONE  # their deletion enqueues this DPUService again
        conds[APPS_RECONCILED] = cond(obj, APPS_RECONCILED, True)
        conds[ROLLOUT_PROGRESSING] = rollout_condition(obj, rollout)
        return DONE  # ArgoCD's status updates on the Applications move the rollout on

    # -- interfaces ---------------------------------------------------------------------------------
    async def _claim_interface(self, service: Obj, name: str) -> None:
        """Annotate the DPUServiceInterface as this DPUService's, guarded by the resourceVersion it was checked at
        (two DPUServices claiming it at once: one conflicts, and then finds it taken)."""
        dsi = self.interfaces.get(namespace_of(service), name) or {}
        md = {"annotations": {CONSUMED_BY_ANNOTATION: name_of(service)}, "resourceVersion": resource_version_of(dsi)}
        patch = {"metadata": md}
        await self.client.patch_no_result(self.interfaces.resource, namespace_of(service), name, patch)

    async def _release_interfaces(self, service: Obj) -> None:
        for name in argocd.spec_of(service).get("interfaces") or []:
            dsi = self.interfaces.get(namespace_of(service), name)
            if dsi is None or annotations_of(dsi).get(CONSUMED_BY_ANNOTATION) != name_of(service):
                continue
            patch = {"metadata": {"annotations": {CONSUMED_BY_ANNOTATION: None}}}
            try:
                await self.client.patch_no_result(self.interfaces.resource, namespace_of(service), name, patch)
            except ApiError as exc:
                if not exc.not_found:
                    raise

    # -- prerequisites ------------------------------------------------------------------------------
    async def _step(self, errors: list[str], what: str, step: Awaitable[object]) -> None:
        """Await one prerequisite, collecting what went wrong (DPF aggregates them)."""
        try:
            await step
        except Exception as exc:  # ApiError, DpuClusterError, kubeconfig problems, connection errors: retried
            errors.append(f"{what}: {exc}")

    async def _prereqs(self, service: Obj, operator: Obj) -> list[str]:
        errors: list[str] = []
        clusters = self._live_clusters()
        target_ns = namespace_of(service)
        if argocd.project_name(service) == PROJECT_DPU:
            for cluster in clusters:
                await self._step(errors, f"namespace for cluster {name_of(cluster)}",
                                 self._dpu_namespace(cluster, target_ns))  # fmt: skip
        else:
            await self._step(errors, "in-cluster namespace", ensure_namespace(self.client, target_ns))
        namespace = namespace_of(operator)
        for cluster in clusters:
            await self._step(errors, f"ArgoSecrets: cluster {name_of(cluster)}",
                             self._argo_secret(cluster, namespace, operator))  # fmt: skip
        for project in argocd.app_projects(namespace, [name_of(c) for c in clusters], operator):
            await self._step(
                errors, f"AppProject {project['metadata']['name']}", apply(self.client, APPPROJECTS, project)
            )
        await self._step(errors, "ImagePullSecrets", self._pull_secrets(service, clusters))
        return errors

    async def _dpu_namespace(self, cluster: Obj, name: str) -> None:
        if self.access is not None:
            await ensure_namespace(await self._dpu_client(cluster), name)

    async def _argo_secret(self, cluster: Obj, namespace: str, operator: Obj) -> None:
        secret_name = str(argocd.spec_of(cluster).get("kubeconfig") or "")
        if not secret_name:
            raise argocd.KubeconfigProblem(f"DPUCluster {key_of(cluster)} has no spec.kubeconfig yet")
        where = f"Secret {namespace_of(cluster)}/{secret_name}"
        admin = parse_admin_secret(await self.client.get(SECRETS, namespace_of(cluster), secret_name), where)
        config = yaml.safe_load(admin.raw)
        await apply(self.client, SECRETS, argocd.cluster_secret(config, namespace, cluster, operator))

    async def _pull_secrets(self, service: Obj, clusters: Iterable[Obj]) -> None:
        """DPF's reconcileImagePullSecrets: the labelled Secrets of the service's namespace copied into every DPU
        cluster, labelled ones there that the host no longer has deleted."""
        if self.access is None:
            return
        ns = namespace_of(service)
        host, _ = await self.client.list(SECRETS, ns, label_selector=IMAGE_PULL_SECRET_LABEL)
        wanted = {name_of(s): argocd.mirrored_pull_secret(s) for s in host}
        for cluster in clusters:
            dpu = await self._dpu_client(cluster)
            for secret in wanted.values():
                await apply(dpu, SECRETS, secret)
            there, _ = await dpu.list(SECRETS, ns, label_selector=IMAGE_PULL_SECRET_LABEL)
            for orphan in (s for s in there if name_of(s) not in wanted):
                log.info("deleting an orphaned image pull Secret",
                         extra={"object": describe("Secret", orphan), "cluster": name_of(cluster)})  # fmt: skip
                await delete_if_present(dpu, SECRETS, ns, name_of(orphan))

    # -- applications -------------------------------------------------------------------------------
    async def _applications(
        self, service: Obj, key: ObjKey, namespace: str, values: dict[str, object]
    ) -> tuple[list[str], RolloutPlan]:
        """Every destination's Application made, or updated as far as the rollout budget allows; others of this
        DPUService deleted. Returns the stale ones that still exist, and the rollout's state."""
        project = argocd.project_name(service)
        desired: dict[str, Obj] = {}
        for cluster in self._destinations(service):
            app = argocd.application(namespace, project, service, values, cluster)
            desired[app["metadata"]["name"]] = app
        wanted = set(desired)
        current = await self._current_apps(key, desired)
        rollout = plan_rollout(current, desired, budget_of(service))
        for name, app in desired.items():
            if name in rollout.held:
                await self._unpause(current.get(name) or {})  # ArgoCD keeps its previous spec running meanwhile
            else:
                await self._ensure_application(app)
        stale: list[str] = []
        for app in self._apps_of(key):
            if DPUCLUSTER_LABEL not in labels_of(app) or name_of(app) in wanted:
                continue  # not one of ours, or one we want
            await self._delete_application(app)
            stale.append(f"{namespace_of(app)}/{name_of(app)}")
        return stale, rollout

    async def _current_apps(self, key: ObjKey, desired: dict[str, Obj]) -> dict[str, Obj]:
        """The DPUService's Applications by name. Read from the API when one must change: the rollout's budget
        must not be spent on a cache that has not yet seen the previous step's updates."""
        cached = {name_of(a): a for a in self._apps_of(key)}
        if all(n not in cached or cached[n].get("spec") == d["spec"] for n, d in desired.items()):
            return cached
        return {name_of(a): a for a in await self._list_apps(key)}

    async def _ensure_application(self, app: Obj) -> None:
        namespace, name = app["metadata"]["namespace"], app["metadata"]["name"]
        try:
            current = await self.client.get(APPLICATIONS, namespace, name)
        except ApiError as exc:
            if not exc.not_found:
                raise
            log.info("creating Application", extra={"object": describe("Application", ObjKey(namespace, name))})
            await self.client.create(APPLICATIONS, app)
            return
        skipped = SKIP_RECONCILE in annotations_of(current)
        if current.get("spec") == app["spec"] and not skipped:
            return
        patch: dict[str, object] = {"spec": merge_patch_to(current.get("spec"), app["spec"])}
        md: dict[str, object] = {"resourceVersion": resource_version_of(current)}
        if skipped:
            md["annotations"] = {SKIP_RECONCILE: None}  # unpaused
        patch["metadata"] = md
        log.info("updating Application", extra={"object": describe("Application", ObjKey(namespace, name))})
        await self.client.patch_no_result(APPLICATIONS, namespace, name, patch)

    async def _unpause(self, app: Obj) -> None:
        if SKIP_RECONCILE not in annotations_of(app):
            return
        patch = {"metadata": {"annotations": {SKIP_RECONCILE: None}, "resourceVersion": resource_version_of(app)}}
        await self.client.patch_no_result(APPLICATIONS, namespace_of(app), name_of(app), patch)

    async def _delete_application(self, app: Obj) -> None:
        """Delete it; a paused one is unpaused first, so ArgoCD can prune what it deployed."""
        ns, name = namespace_of(app), name_of(app)
        if SKIP_RECONCILE in annotations_of(app):
            try:
                await self.client.patch_no_result(APPLICATIONS, ns, name,
                                                  {"metadata": {"annotations": {SKIP_RECONCILE: None}}})  # fmt: skip
            except ApiError as exc:
                if not exc.not_found:
                    raise
        if not is_deleting(app):
            await delete_if_present(self.client, APPLICATIONS, ns, name)

    async def _pause(self, service: Obj, namespace: str) -> None:
        for cluster in self._destinations(service):
            name = argocd.application_name(cluster, name_of(service))
            app = self.applications.get(namespace, name)
            if app is None or annotations_of(app).get(SKIP_RECONCILE) == "true":
                continue
            try:
                await self.client.patch_no_result(APPLICATIONS, namespace, name,
                                                  {"metadata": {"annotations": {SKIP_RECONCILE: "true"}}})  # fmt: skip
            except ApiError as exc:
                if not exc.not_found:
                    raise

    # -- deletion -----------------------------------------------------------------------------------
    async def _delete(self, obj: Obj, key: ObjKey) -> Result:
        if FINALIZER_DPUSERVICE not in finalizers_of(obj):
            return DONE
        apps = await self._list_apps(key)
        for app in apps:
            await self._delete_application(app)
        apps = await self._list_apps(key)
        if apps:
            waiting = ", ".join(f"{namespace_of(a)}/{name_of(a)}.{APPLICATIONS.group}" for a in apps)
            message = f"The following applications are awaiting deletion: {waiting}"
            conds = [cond(obj, APPS_RECONCILED, False, REASON_AWAITING_DELETION, message)]
            conds.append(summary(obj, conds))
            await self._write_status(obj, key, conds, with_summary=False)
            return Result(requeue_after=self.deletion_poll)  # their deletion events come sooner
        await self._release_interfaces(obj)
        if self.access is not None and not any(
            not is_deleting(s) for s in self.services.list() if namespace_of(s) == key.namespace
        ):
            await self._remove_pull_secrets(key.namespace)
        keep = [f for f in finalizers_of(obj) if f != FINALIZER_DPUSERVICE]
        try:
            await self.client.patch_no_result(DPUSERVICES, key.namespace, key.name, finalizer_patch(obj, keep))
        except ApiError as exc:
            if not exc.not_found:
                raise
        log.info("Applications gone; finalizer removed", extra={"object": describe(KIND, key)})
        return DONE

    async def _list_apps(self, key: ObjKey) -> list[Obj]:
        """The DPUService's Applications, read from the API (not the cache) before letting it go."""
        selector = f"{DPUSERVICE_NAME}={key.name},{DPUSERVICE_NAMESPACE}={key.namespace}"
        try:
            apps, _ = await self.client.list(APPLICATIONS, None, label_selector=selector)
        except ApiError as exc:
            if exc.not_found:
                return []  # ArgoCD's CRD is not installed: there can be no Application
            raise
        return apps

    async def _remove_pull_secrets(self, namespace: str) -> None:
        """The namespace's last DPUService is going: its mirrored pull Secrets leave every DPU cluster."""
        for cluster in self._live_clusters():
            dpu = await self._dpu_client(cluster)
            there, _ = await dpu.list(SECRETS, namespace, label_selector=IMAGE_PULL_SECRET_LABEL)
            for secret in there:
                await delete_if_present(dpu, SECRETS, namespace, name_of(secret))

    # -- status -------------------------------------------------------------------------------------
    async def _write_status(
        self, obj: Obj, key: ObjKey, conditions: Iterable[Condition], *, with_summary: bool = True
    ) -> None:
        conds = list(conditions)
        if with_summary:
            conds = [summary(obj, conds), *conds]
        wanted = status_patch(obj, conds)
        if wanted is None:
            return
        if await self.client.patch_status(DPUSERVICES, key.namespace, key.name, wanted):
            self.status_patches += 1

    # -- cache events -------------------------------------------------------------------------------
    def on_service(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and status_only_change(old, obj):
            return  # our own status write
        self.queue.add(key_of(obj))

    def on_application(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        for ref in _service_of_app(obj) + (_service_of_app(old) if old is not None else []):
            ns, _, name = ref.partition("/")
            self.queue.add(ObjKey(ns, name))

    def on_interface(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        for svc in self.services.by_index(INTERFACE_INDEX, f"{namespace_of(obj)}/{name_of(obj)}"):
            self.queue.add(key_of(svc))

    def on_secret(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        """A host Secret changed: labelled image-pull Secrets are mirrored by the DPUServices of their namespace."""
        if argocd.is_pull_secret(obj) or (old is not None and argocd.is_pull_secret(old)):
            for key in self.services.list_keys():
                if key.namespace == namespace_of(obj):
                    self.queue.add(key)

    def on_cluster(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        self.enqueue_all()  # every DPUService targets every DPUCluster

    def on_operator_config(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        self.enqueue_all()

    def handlers(self) -> list[tuple[Informer, Handler]]:
        """Which cache feeds which handler (what the manager forwards while this term leads)."""
        return [
            (self.services, self.on_service),
            (self.applications, self.on_application),
            (self.clusters, self.on_cluster),
            (self.interfaces, self.on_interface),
            (self.operator_configs, self.on_operator_config),
        ]

    def enqueue_all(self) -> None:
        for key in self.services.list_keys():
            self.queue.add(key)
