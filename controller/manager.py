"""Wiring: caches that every replica keeps warm, and the work only the leader does.

Informers (Nodes, DPUSets, DPUs, BFBs, DPUFlavors, DPUClusters, DPUServiceInterfaces, DPUServiceChains,
DPUServiceIPAMs) and the etcd views (reports, members) run on every replica, so a standby
that wins the election starts from warm caches. A leadership term builds a fresh IntentPublisher (which
loads what is in etcd), the provisioning reconcilers, the chaining fan-outs, the DPUServiceIPAM pools, the context work (node effects, BFBs, host discovery,
DPU cluster answers) and the status writer, enqueues everything once, and runs until the term ends.
The installation's DPFOperatorConfig shapes that work (controller/operatorconfig/): while it is paused nothing but
its own status runs, a component it disables leaves the families doing that component's work out, and a change to
either restarts the term's work in a new generation (a fresh publisher, everything enqueued again).
With gossip on, every replica's member follows the dpfds too; the leader's status writer turns what it sees into
the DPUs' reachability conditions (reachability.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from controller.chains.family import DPUSERVICECHAINS, DPUSERVICEINTERFACES
from controller.chains.fanout import FanoutDeps
from controller.chains.work import ChainWork
from controller.credentials.access import ClusterAccess
from controller.credentials.resources import CREDENTIAL_REQUESTS
from controller.credentials.work import CredentialWork
from controller.dpucluster import DpuClusters
from controller.dpudeployment.names import DPUDEPLOYMENTS, DPUSERVICECONFIGURATIONS, DPUSERVICETEMPLATES
from controller.dpudeployment.work import DeploymentInformers, DpuDeploymentWork
from controller.ipam.selection import DPUSERVICEIPAMS
from controller.ipam.work import IpamWork
from controller.kube.client import KubeClient
from controller.kube.events import EventRecorder
from controller.kube.informer import EventType, Handler, Informer
from controller.kube.objects import Obj, ObjKey, key_of, name_of
from controller.kube.resources import BFBS, DPUCLUSTERS, DPUFLAVORS, DPUS, DPUSETS, NODES
from controller.leader import Term
from controller.members import MembersCache
from controller.nodeeffect import NodeEffectOptions
from controller.operatorconfig.context import MtuContext
from controller.operatorconfig.plan import CHAINS, IPAM, PROVISIONING, Plan, plan_of
from controller.operatorconfig.plan import CREDENTIALS as CREDENTIALS_FAMILY
from controller.operatorconfig.plan import DPUDEPLOYMENTS as DPUDEPLOYMENTS_FAMILY
from controller.operatorconfig.plan import DPUSERVICES as DPUSERVICES_FAMILY
from controller.operatorconfig.system_services import DEFAULT_DPU_NETWORKING_CHART
from controller.operatorconfig.work import OperatorConfigWork
from controller.publish import FenceLost, IntentPublisher
from controller.reachability import NAME_INDEX, MemberLedger, affected_dpus, reachability_conditions
from controller.reconcilers.context_work import ContextDeps, ContextWork, index_context_users
from controller.reconcilers.dpu_intent import dpu_ref
from controller.reconcilers.provisioning import ProvisioningDeps, ProvisioningReconcilers, index_dpus
from controller.reports import ReportCache
from controller.services.resources import APPLICATIONS, DPFOPERATORCONFIGS, DPUSERVICES
from controller.services.work import ServiceWork
from controller.status import StatusTarget, StatusWriter, dpu_node, dpu_status
from dpfd.api.intents import ObjectRef, Report
from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.view import MemberInfo
from dpfd.store import Store

log = logging.getLogger(__name__)


class PlanChanged(Exception):
    """The DPFOperatorConfig changed what the leader runs: the current generation of its work ends."""


@dataclass
class ControllerOptions:
    workers: int = 8
    resync: float = 300.0
    api_concurrency: int = 32  # Kubernetes writes in flight for one DPUSet's fan-out
    status_concurrency: int = 4  # status patches in flight
    flush_delay: float = 0.005  # how long the publisher waits to coalesce a burst of intent changes
    events: bool = True
    node_effects: NodeEffectOptions | None = None  # drain timeout, eviction grace period
    cluster_health_interval: float = 30.0  # seconds between health checks of a DPUCluster's API server
    dpu_clusters: bool = True  # reach the DPU clusters (join commands, their Nodes, DPUCluster status)
    dpu_networking_chart: str = (
        DEFAULT_DPU_NETWORKING_CHART  # the system DPUServices' chart, unless the config names one
    )


class _LeaderWork:
    """What one leadership term runs."""

    def __init__(
        self,
        provisioning: ProvisioningReconcilers,
        context: ContextWork,
        status: StatusWriter,
        publisher: IntentPublisher,
        chains: ChainWork,
        ipam: IpamWork,
        services: ServiceWork,
        deployments: DpuDeploymentWork,
        credentials: CredentialWork,
    ) -> None:
        self.provisioning = provisioning
        self.chains = chains
        self.ipam = ipam
        self.services = services
        self.deployments = deployments
        self.credentials = credentials
        self.context = context
        self.status = status
        self.publisher = publisher


class Controller:
    def __init__(
        self,
        kube: KubeClient,
        store: Store,
        options: ControllerOptions | None = None,
        *,
        cluster_access: DpuClusters | None = None,
        gossip: GossipAgent | None = None,
        host_access: ClusterAccess | None = None,
    ) -> None:
        """``gossip``: this replica's started gossip member, or None when gossip is off. ``host_access``: the host
        cluster's address and CA, for credential Secrets aimed at it (None: those requests report why they fail)."""
        self.kube = kube
        self.store = store
        self.options = options or ControllerOptions()
        resync = self.options.resync
        self.nodes = Informer(kube, NODES, resync_period=resync)
        self.dpusets = Informer(kube, DPUSETS, resync_period=resync)
        self.dpus = Informer(kube, DPUS, resync_period=resync)
        self.bfbs = Informer(kube, BFBS, resync_period=resync)
        self.flavors = Informer(kube, DPUFLAVORS, resync_period=resync)
        self.clusters = Informer(kube, DPUCLUSTERS, resync_period=resync)
        self.service_interfaces = Informer(kube, DPUSERVICEINTERFACES, resync_period=resync)
        self.service_chains = Informer(kube, DPUSERVICECHAINS, resync_period=resync)
        self.service_ipams = Informer(kube, DPUSERVICEIPAMS, resync_period=resync)
        self.dpuservices = Informer(kube, DPUSERVICES, resync_period=resync)
        self.operator_configs = Informer(kube, DPFOPERATORCONFIGS, resync_period=resync)
        self.deployments = Informer(kube, DPUDEPLOYMENTS, resync_period=resync)
        self.service_templates = Informer(kube, DPUSERVICETEMPLATES, resync_period=resync)
        self.service_configurations = Informer(kube, DPUSERVICECONFIGURATIONS, resync_period=resync)
        self.credential_requests = Informer(kube, CREDENTIAL_REQUESTS, resync_period=resync)
        self.host_access = host_access
        # ArgoCD's Applications: only where ArgoCD is installed, so the caches' sync does not wait for them.
        self.applications = Informer(kube, APPLICATIONS, resync_period=resync)
        index_dpus(self.dpus)
        index_context_users(self.dpus, self.dpusets)
        self.cluster_access = cluster_access
        if cluster_access is not None:
            cluster_access.add_handler(self._on_cluster_node)
        self.reports = ReportCache(store)
        self.members = MembersCache(store)
        self.events = EventRecorder(kube) if self.options.events else None
        self.work: _LeaderWork | None = None  # the current term's, while leading
        self.plan = Plan()  # what the DPFOperatorConfig asks, as the current generation was built
        self.running_plan: Plan | None = None  # set once a generation's work runs (tests wait on it)
        self._plan_changed: asyncio.Event | None = None
        # Told a term's work once it has stopped, its counters final (controller.metrics carries them over).
        self.term_ended: list[Callable[[_LeaderWork], None]] = []
        self.nodes.add_handler(self._on_node)
        self.dpusets.add_handler(self._on_dpuset)
        self.dpus.add_handler(self._on_dpu)
        self.bfbs.add_handler(self._on_bfb)
        self.flavors.add_handler(self._on_flavor)
        self.clusters.add_handler(self._on_cluster)
        self.service_interfaces.add_handler(self._on_service_interface)
        self.service_chains.add_handler(self._on_service_chain)
        self.service_ipams.add_handler(self._on_service_ipam)
        self.operator_configs.add_handler(self._on_operator_config)
        self.reports.add_handler(self._on_report)
        self.members.add_handler(self._on_member)
        self.gossip = gossip
        self.ledger: MemberLedger | None = None
        if gossip is not None:
            self.dpus.add_index(NAME_INDEX, lambda o: [name_of(o)])
            self.ledger = MemberLedger()
            self.ledger.add_handler(self._on_gossip_member)
            self.ledger.attach(gossip)

    # -- caches -----------------------------------------------------------------------------------
    async def run_caches(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.nodes.run(), name="informer-nodes")
            tg.create_task(self.dpusets.run(), name="informer-dpusets")
            tg.create_task(self.dpus.run(), name="informer-dpus")
            tg.create_task(self.bfbs.run(), name="informer-bfbs")
            tg.create_task(self.flavors.run(), name="informer-dpuflavors")
            tg.create_task(self.clusters.run(), name="informer-dpuclusters")
            tg.create_task(self.service_interfaces.run(), name="informer-dpuserviceinterfaces")
            tg.create_task(self.service_chains.run(), name="informer-dpuservicechains")
            tg.create_task(self.service_ipams.run(), name="informer-dpuserviceipams")
            for informer in self._service_informers():
                tg.create_task(informer.run(), name=f"informer-{informer.resource.plural}")
            tg.create_task(self.applications.run(), name="informer-applications")
            tg.create_task(self.reports.run(), name="reports")
            tg.create_task(self.members.run(), name="members")
            if self.events is not None:
                tg.create_task(self.events.run(), name="events")
            if self.cluster_access is not None:
                tg.create_task(self.cluster_access.run(), name="dpu-clusters")

    def _sync_events(self) -> list[asyncio.Event]:
        return [
            self.nodes.synced,
            self.dpusets.synced,
            self.dpus.synced,
            self.bfbs.synced,
            self.flavors.synced,
            self.clusters.synced,
            self.service_interfaces.synced,
            self.service_chains.synced,
            self.service_ipams.synced,
            *(informer.synced for informer in self._service_informers()),
            self.reports.synced,
            self.members.synced,
        ]

    def _service_informers(self) -> list[Informer]:
        return [
            self.dpuservices,
            self.operator_configs,
            self.deployments,
            self.service_templates,
            self.service_configurations,
            self.credential_requests,
        ]

    def is_synced(self) -> bool:
        return all(ev.is_set() for ev in self._sync_events())

    async def wait_synced(self) -> None:
        for ev in self._sync_events():
            await ev.wait()

    # -- leadership -------------------------------------------------------------------------------
    async def lead(self, term: Term) -> None:
        """Run the leader's work until cancelled (or the publisher is fenced off).

        The DPFOperatorConfig work runs for the whole term. The rest runs in generations: each one builds the
        families the DPFOperatorConfig's plan leaves on (none while paused) and runs them until the plan changes,
        then stops them and the next generation starts afresh (a fresh publisher, everything enqueued)."""
        await self.wait_synced()
        configs = OperatorConfigWork(
            self.kube, self.operator_configs, dpu_networking_chart=self.options.dpu_networking_chart
        )
        self.operator_configs.add_handler(configs.on_config)
        self.dpuservices.add_handler(configs.on_dpuservice)
        configs.enqueue_all()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(configs.run(), name="dpfoperatorconfig")
                tg.create_task(self._run_generations(term), name="leader-generations")
        finally:
            self.operator_configs.remove_handler(configs.on_config)
            self.dpuservices.remove_handler(configs.on_dpuservice)
            configs.shut_down()

    async def _run_generations(self, term: Term) -> None:
        while True:
            plan = self.plan = plan_of(self.operator_configs.list())
            changed = self._plan_changed = asyncio.Event()
            restart = False
            try:
                await self._run_generation(term, plan, changed)
            except* PlanChanged:
                restart = True
            finally:
                self._plan_changed = None
                self.running_plan = None
            if not restart:
                return
            log.info("the DPFOperatorConfig changed what runs; restarting the leader's work",
                     extra={"identity": term.identity})  # fmt: skip

    def _on_operator_config(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        changed = self._plan_changed
        if changed is not None and plan_of(self.operator_configs.list()) != self.plan:
            changed.set()

    async def _until_plan_changes(self, changed: asyncio.Event) -> None:
        await changed.wait()
        raise PlanChanged()

    async def _run_generation(self, term: Term, plan: Plan, changed: asyncio.Event) -> None:
        publisher = IntentPublisher(self.store, flush_delay=self.options.flush_delay, fence=term.fence)
        await publisher.start()
        context = ContextWork(
            ContextDeps(
                client=self.kube,
                nodes=self.nodes,
                dpus=self.dpus,
                dpusets=self.dpusets,
                bfbs=self.bfbs,
                flavors=self.flavors,
                clusters=self.clusters,
                reports=self.reports,
                members=self.members,
                publisher=publisher,
                enqueue_dpu=self._enqueue_dpu,
                cluster_access=self.cluster_access,
                node_effect_options=self.options.node_effects,
                events=self.events,
                cluster_health_interval=self.options.cluster_health_interval,
            )
        )
        deps = ProvisioningDeps(
            client=self.kube,
            nodes=self.nodes,
            dpusets=self.dpusets,
            dpus=self.dpus,
            publisher=publisher,
            reports=self.reports,
            members=self.members,
            events=self.events,
            api_concurrency=self.options.api_concurrency,
            context=MtuContext(context, lambda: plan),
        )
        provisioning = ProvisioningReconcilers(deps, workers=self.options.workers)
        ledger = self.ledger
        dpu_target = StatusTarget(
            DPUS,
            self.dpus,
            node_of=dpu_node,
            status_of=dpu_status,
            own_conditions=(lambda dpu: reachability_conditions(ledger, dpu)) if ledger is not None else None,
        )
        status = StatusWriter(
            self.kube,
            self.reports,
            [dpu_target],
            concurrency=self.options.status_concurrency,
            busy=provisioning.busy,
            wait_idle=provisioning.wait_idle,
        )
        chains = ChainWork(
            FanoutDeps(
                client=self.kube,
                clusters=self.clusters,
                cluster_access=self.cluster_access,
                members=self.members,
                reports=self.reports,
                publisher=publisher,
            ),
            self.service_interfaces,
            self.service_chains,
            workers=max(1, self.options.workers // 4),
        )
        ipam = IpamWork(
            self.kube,
            self.store,
            self.service_ipams,
            self.clusters,
            self.cluster_access,
            workers=max(1, self.options.workers // 4),
        )
        services = ServiceWork(
            self.kube,
            self.dpuservices,
            self.applications,
            self.clusters,
            self.service_interfaces,
            self.operator_configs,
            self.cluster_access,
            workers=max(1, self.options.workers // 4),
        )
        deployments = DpuDeploymentWork(
            self.kube,
            DeploymentInformers(
                deployments=self.deployments,
                templates=self.service_templates,
                configurations=self.service_configurations,
                bfbs=self.bfbs,
                flavors=self.flavors,
                dpusets=self.dpusets,
                services=self.dpuservices,
                interfaces=self.service_interfaces,
                chains=self.service_chains,
            ),
            workers=max(1, self.options.workers // 4),
        )
        credentials = CredentialWork(
            self.kube,
            self.credential_requests,
            self.clusters,
            self.cluster_access,
            self.host_access,
            workers=max(1, self.options.workers // 4),
        )
        # The services families take their cache events through handlers registered for this generation only.
        term_handlers: list[tuple[Informer, Handler]] = []
        for family, family_work in ((DPUSERVICES_FAMILY, services), (DPUDEPLOYMENTS_FAMILY, deployments),
                                    (CREDENTIALS_FAMILY, credentials)):  # fmt: skip
            if plan.runs(family):
                term_handlers += family_work.handlers()
        for informer, handler in term_handlers:
            informer.add_handler(handler)
        work = self.work = _LeaderWork(
            provisioning, context, status, publisher, chains, ipam, services, deployments, credentials
        )
        # What this generation runs: the families the plan leaves on, each enqueued in full once.
        runs: list[tuple[str, Callable[[], None], Callable[[], Coroutine[Any, Any, None]]]] = []
        if plan.runs(PROVISIONING):
            runs += [
                ("provisioning", provisioning.enqueue_all, provisioning.run),
                ("provisioning-context", context.enqueue_all, context.run),
                ("status", status.enqueue_all, status.run),
            ]
        if plan.runs(CHAINS):
            runs.append(("chains", chains.enqueue_all, chains.run))
        if plan.runs(IPAM):
            runs.append(("ipam", ipam.enqueue_all, ipam.run))
        if plan.runs(DPUSERVICES_FAMILY):
            runs.append(("dpuservices", services.enqueue_all, services.run))
        if plan.runs(DPUDEPLOYMENTS_FAMILY):
            runs.append(("dpudeployments", deployments.enqueue_all, deployments.run))
        if plan.runs(CREDENTIALS_FAMILY):
            runs.append(("credentials", credentials.enqueue_all, credentials.run))
        for _, enqueue_all, _ in runs:
            enqueue_all()
        log.info(
            "leading",
            extra={
                "identity": term.identity,
                "dpusets": len(self.dpusets),
                "dpus": len(self.dpus),
                "intents": len(publisher.sources()),
                "paused": plan.paused,
                "running": [name for name, _, _ in runs],
            },
        )
        try:
            async with asyncio.TaskGroup() as tg:
                for name, _, run in runs:
                    tg.create_task(run(), name=name)
                tg.create_task(self._watch_publisher(publisher), name="publisher-guard")
                tg.create_task(self._until_plan_changes(changed), name="plan-guard")
                self.running_plan = plan
        finally:
            self.work = None
            provisioning.shut_down()
            context.shut_down()
            chains.shut_down()
            ipam.shut_down()
            services.shut_down()
            deployments.shut_down()
            credentials.shut_down()
            for informer, handler in term_handlers:
                informer.remove_handler(handler)
            status.queue.shut_down()
            try:
                await publisher.stop(flush=term.graceful or changed.is_set())
            finally:
                for listener in self.term_ended:
                    listener(work)

    async def _watch_publisher(self, publisher: IntentPublisher) -> None:
        await publisher.stopped.wait()
        raise publisher.error or FenceLost("intent publisher stopped")

    # -- cache events, forwarded to the current term ---------------------------------------------
    def _enqueue_dpu(self, key: ObjKey) -> None:
        if self.work is not None:
            self.work.provisioning.dpu.queue.add(key)

    def _on_node(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.work is not None:
            self.work.provisioning.on_node(event, obj, old)
            self.work.context.on_node(event, obj, old)

    def _on_dpuset(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.work is not None:
            self.work.provisioning.on_dpuset(event, obj, old)
            self.work.context.on_dpuset(event, obj, old)

    def _on_bfb(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.work is not None:
            self.work.context.on_bfb(event, obj, old)

    def _on_flavor(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.work is not None:
            self.work.context.on_flavor(event, obj, old)

    def _on_cluster(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.cluster_access is not None:  # every replica keeps its DPU-cluster connections warm
            if event == "DELETED":
                self.cluster_access.forget(key_of(obj))
            else:
                self.cluster_access.watch(obj)
        if self.work is not None:
            self.work.context.on_cluster(event, obj, old)
            self.work.chains.on_cluster(event, obj, old)
            self.work.ipam.on_cluster(event, obj, old)

    def _on_service_interface(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.work is not None:
            self.work.chains.on_interface(event, obj, old)

    def _on_service_chain(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.work is not None:
            self.work.chains.on_chain(event, obj, old)

    def _on_service_ipam(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.work is not None:
            self.work.ipam.on_object(event, obj, old)

    def _on_cluster_node(self, cluster: ObjKey, node: str) -> None:
        if self.work is not None:
            self.work.context.on_cluster_node(cluster, node)
            self.work.chains.on_cluster_node(cluster, node)
            self.work.ipam.on_cluster_node(cluster, node)

    def _on_dpu(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if self.work is not None:
            self.work.provisioning.on_dpu(event, obj, old)
            self.work.context.on_dpu(event, obj, old)
            if event != "DELETED":
                k = key_of(obj)
                self.work.status.enqueue(dpu_ref(k.namespace, k.name))

    def _on_report(self, node: str, ref: ObjectRef, report: Report | None) -> None:
        if self.work is not None:
            self.work.status.enqueue(ref)
            self.work.provisioning.on_report(node, ref, report)
            self.work.context.on_report(node, ref, report)
            self.work.chains.on_report(node, ref, report)

    def _on_gossip_member(self, info: MemberInfo) -> None:
        if self.work is not None:
            for dpu in affected_dpus(info, self.dpus.by_index):
                k = key_of(dpu)
                self.work.status.enqueue(dpu_ref(k.namespace, k.name))

    def _on_member(self, node: str, present: bool) -> None:
        if self.work is not None:
            self.work.provisioning.on_member(node, present)
            self.work.context.on_member(node, present)
            self.work.chains.on_member(node, present)
