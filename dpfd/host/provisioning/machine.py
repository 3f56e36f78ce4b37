"""DpuProvisioner: DPF's DPU phase machine, run by the host dpfd for each DPU on its host.

Level-triggered: every reconcile reads the intent and the persisted progress, and does the next thing.
Quick checks run inline; anything that waits on the outside world (download, DMS, reboots, netlink) runs as
one background task per DPU, which kicks the DPU again when it ends. Progress is written durably before
and after every step that touches the DPU, so a restart resumes where it stopped (see `progress`).

Unlike DPF, Error is not a dead end: the failed phase is retried with exponential backoff, and an operator
can ask for a retry or a reflash by annotating the DPU (`ANNOTATION_RETRY`, `ANNOTATION_REFLASH`), or on the host
itself with dpfctl (`requests.OperatorRequests`). A drained host (dpfctl drain) starts no new work: each DPU
finishes the step it runs and then holds where it is until the host is undrained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpfd.agent.backoff import Backoff
from dpfd.agent.reconciler import AgentLink
from dpfd.api.conditions import Condition, set_condition
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.host.provisioning import phases as P
from dpfd.host.provisioning.deps import (
    BfbSource,
    BfCfgRenderer,
    DmsProvider,
    DpuPresence,
    DpuTarget,
    HostNetwork,
    HostPower,
    Inventory,
    ProvisioningFailure,
)
from dpfd.host.provisioning.ownership import Claim, DpuLocks, lock_name
from dpfd.host.provisioning.progress import PhaseEntry, Progress, ProgressStore, StepError, install_identity
from dpfd.host.provisioning.requests import OperatorRequests

log = logging.getLogger(__name__)

KIND = "DPU"
ANNOTATION_RETRY = "provisioning.dpu.nvidia.com/retry"  # any new value: retry a failed phase now
ANNOTATION_REFLASH = "provisioning.dpu.nvidia.com/reflash"  # any new value: flash again from the start
DEFAULT_NUM_VFS = 16
DEFAULT_MTU = 1500

Kick = Callable[[ObjectRef, float], None]
_BACK_BY = {"gossip": "its dpfd joined gossip", "dms": "DMS RebootStatus says done"}


@dataclass
class ProvisioningDeps:
    inventory: Inventory
    bfbs: BfbSource
    dms: DmsProvider
    power: HostPower
    network: HostNetwork
    render_bf_cfg: BfCfgRenderer
    retry: Backoff = field(default_factory=lambda: Backoff(base=5.0, cap=300.0))
    dpu_reboot_timeout: float = 1800.0  # DPF allows 30 min for activation and its reboot
    host_reboot_timeout: float = 1800.0  # a requested host reboot that has not happened by then is an error
    recheck_interval: float = 10.0  # how often to look again at something outside our control
    num_vfs: int = DEFAULT_NUM_VFS  # unless the intent's context says
    mtu: int = DEFAULT_MTU
    clock: Callable[[], float] = time.time  # wall clock: compared with the start time a DPU's dpfd gossips
    # Gossip: the DPU's dpfd coming back ends the wait for its reboot before DMS says so; None: DMS alone.
    presence: DpuPresence | None = None
    progress_interval: float = 1.0  # how often a running download or install reports its bytes


@dataclass
class _Wait:
    """Stay in the phase: `reason`/`message` say why; look again after `recheck` seconds (None: on change)."""

    reason: str
    message: str
    recheck: float | None = None


@dataclass
class _Background:
    """Run `work` as the DPU's background task; the phase is done when it returns."""

    what: str
    work: Callable[[], Awaitable[None]]


@dataclass
class _NotOurs:
    """Another dpfd holds the DPU's lock: report nothing (its report is the one that counts) until it is ours."""

    holder: str


_ADVANCE = object()
StepOutcome = _Wait | _Background | _NotOurs | object
REASON_LOCKED = "DPULocked"


class DpuProvisioner:
    """The host role's reconciler for kind DPU."""

    kind = KIND

    def __init__(self, node: str, state_dir: Path, deps: ProvisioningDeps) -> None:
        self.node = node
        self.deps = deps
        self.progress = ProgressStore(state_dir)
        self.requests = OperatorRequests(state_dir)
        self._kick: Kick = lambda ref, delay: None
        self._tasks: dict[ObjectRef, tuple[str, asyncio.Task[None]]] = {}
        self._live: dict[ObjectRef, dict[str, Any]] = {}  # per-DPU figures of the running step (bytes sent, ...)
        self._locks: DpuLocks | None = None

    def bind(self, link: AgentLink) -> None:
        """The agent's way to run this DPU's reconcile again (after `delay` seconds), and its store session, with
        which the provisioner holds each DPU's lock (no locking without a store: the machine tested alone)."""
        self._kick = link.kick
        self._locks = DpuLocks(link) if link.store is not None else None

    def local_refs(self) -> list[ObjectRef]:
        return self.progress.refs(KIND)

    # -- the reconcile ------------------------------------------------------------------------------

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        if intent is None:
            await self._cancel(ref)
            self.progress.remove(ref)
            self.requests.forget(ref)
            await self._release(ref)
            return None
        running = self._tasks.get(ref)
        if running is not None and not running[1].done():
            current = self.progress.load(ref)
            unchanged = (
                current is not None and current.uid == intent.uid and current.install_id == self._install_id(intent)
            )
            if unchanged and not intent.deleting and not self._operator_asks(ref, intent, current):
                assert current is not None
                # Look again every progress_interval while the step runs: the report then carries the bytes moved
                # (dpfctl draws its progress bars from them); a report that did not change is not written.
                step = _Wait(P.REASON_IN_PROGRESS, running[0], self.deps.progress_interval)
                return self._report(intent, current, step)
            await self._cancel(ref)  # the DPU is going away or is to be flashed with something else
        p = self._load(ref, intent)
        if intent.deleting:
            await self._cancel(ref)
            self.progress.remove(ref)
            self.requests.forget(ref)
            await self._release(ref)
            return self._deleting_report(intent, p)
        outcome = self._consume_task(ref, p)
        self._operator_requests(ref, intent, p)
        hold = self._drain_hold(p)
        if hold is not None:
            self._save(ref, p)
            held = self._report(intent, p, hold)
            held.details["drained"] = True
            return held
        if p.error is not None:
            wait = self._error_wait(ref, p)
            if wait is not None:
                self._save(ref, p)
                return self._report(intent, p, wait)
        result = outcome if outcome is not None else await self._advance(ref, intent, p)
        if isinstance(result, _NotOurs):
            log.info("DPU %s is locked by %s; waiting for the lock", ref.name, result.holder or "another dpfd")
            return None
        self._save(ref, p)
        return self._report(intent, p, result)

    async def _advance(self, ref: ObjectRef, intent: Intent, p: Progress) -> StepOutcome:
        """Run phases from the current one until one has to wait."""
        start = P.HAPPY_PATH.index(p.phase) if p.phase in P.HAPPY_PATH else 0
        for phase in P.HAPPY_PATH[start:]:
            if phase != P.INITIALIZING:
                # Past Initializing (local checks only) everything acts on the DPU or asks for it: own it first.
                claim = await self._claim(ref, p)
                if claim is not None:
                    return claim
            p.enter(phase)
            if phase == P.READY:
                return _ADVANCE
            outcome = await self._step(phase, ref, intent, p)
            if outcome is _ADVANCE:
                continue
            if isinstance(outcome, _Background):
                self._start(ref, p, outcome)
            return outcome
        return _ADVANCE

    async def _step(self, phase: str, ref: ObjectRef, intent: Intent, p: Progress) -> StepOutcome:
        target = _target(ref, intent)
        if phase == P.INITIALIZING:
            return await self._initializing(target, intent)
        if phase == P.NODE_EFFECT:
            return _node_effect(intent)
        if phase == P.PENDING:
            return self._pending(ref, intent, p)
        if phase == P.DMS_DEPLOYMENT:
            missing = self.deps.dms.missing(target)
            if missing is not None:
                return _Wait(P.REASON_DMS_UNKNOWN, missing, self.deps.recheck_interval)
            return _Background("starting DMS", lambda: self.deps.dms.ensure_running(target))
        if phase == P.OS_INSTALLING:
            return _Background("installing the BFB through DMS", lambda: self._install(ref, target, intent, p))
        if phase == P.REBOOTING:
            return self._rebooting(ref, target, intent, p)
        if phase == P.HOST_NETWORK:
            if p.host_network_ready:
                return _ADVANCE
            return _Background("configuring host network", lambda: self._host_network(ref, target, intent, p))
        if phase == P.CLUSTER_CONFIG:
            if intent.context.get("clusterNodeReady"):
                p.cluster_ready = True
                return _ADVANCE
            return _Wait(P.REASON_WAITING, f"waiting for Node {ref.name} to be Ready in its DPU cluster")
        raise AssertionError(f"no step for phase {phase!r}")

    # -- phases -------------------------------------------------------------------------------------

    async def _initializing(self, target: DpuTarget, intent: Intent) -> StepOutcome:
        if not await self.deps.inventory.has_dpu(target.pci_address):
            return _Wait(
                P.REASON_DPU_NOT_FOUND,
                f"no BlueField at PCI address {target.pci_address} on {self.node}",
                self.deps.recheck_interval,
            )
        if not await self.deps.inventory.oob_bridge_configured():
            return _Wait(
                P.REASON_OOB_BRIDGE,
                f"bridge br-dpu on {self.node} is missing or has no IPv4 address",
                self.deps.recheck_interval,
            )
        if not intent.context.get("cluster"):
            return _Wait(P.REASON_WAITING, "waiting for the controller to assign a DPU cluster")
        return _ADVANCE

    def _pending(self, ref: ObjectRef, intent: Intent, p: Progress) -> StepOutcome:
        bfb = intent.context.get("bfb") or {}
        if not bfb.get("url"):
            return _Wait(P.REASON_WAITING, f"BFB {intent.spec.get('bfb')!r} does not exist (yet)")
        if p.bfb_digest and self._install_id(intent) == p.install_id:
            return _ADVANCE

        async def fetch() -> None:
            def progress(done: int, total: int | None) -> None:
                self._live[ref] = {"downloaded": done, "size": total}

            fetched = await self.deps.bfbs.fetch(str(bfb["url"]), progress)
            p.bfb_digest = fetched.sha256

        return _Background(f"downloading BFB {bfb.get('name', '')}", fetch)

    async def _install(self, ref: ObjectRef, target: DpuTarget, intent: Intent, p: Progress) -> None:
        bfb = intent.context.get("bfb") or {}
        version = str(bfb.get("fileName") or f"{ref.namespace}-{bfb.get('name', '')}.bfb")
        cfg_version = f"{ref.name}.cfg"
        session = await self.deps.dms.session(target)
        try:
            if not p.mode_set:
                await self._fence(ref)
                await session.set_dpu_mode()
                p.mode_set = True
                self._save(ref, p)
            if not p.bfb_installed:
                await self._fence(ref)
                p.bfb_install_started = True
                self._save(ref, p)
                fetched = await self.deps.bfbs.fetch(str(bfb["url"]))

                def sent(done: int, total: int) -> None:
                    self._live[ref] = {"installed": done, "size": total}

                await session.install(version, fetched.path, sent)
                p.bfb_installed = True
                self._save(ref, p)
            if not p.cfg_installed:
                cfg = self.deps.render_bf_cfg(intent.context.get("flavor") or {}, self._bf_cfg_context(ref, intent))
                await self._fence(ref)
                await session.install_bf_cfg(cfg_version, cfg)
                p.cfg_installed = True
                self._save(ref, p)
            if not p.activated:
                want = f"{version};{cfg_version}"
                # A restart after Activate was sent but before it was recorded: ask the DPU, do not activate twice.
                if not (p.activate_started and await session.running_version() == want):
                    await self._fence(ref)
                    p.activate_started = True
                    p.activated_at = self.deps.clock()
                    p.dpu_dpfd_started_before = self._dpu_dpfd_started(target) or 0.0
                    self._save(ref, p)
                    await session.activate(want)
                p.activated = True
                self._save(ref, p)
        finally:
            await session.close()

    def _rebooting(self, ref: ObjectRef, target: DpuTarget, intent: Intent, p: Progress) -> StepOutcome:
        if not p.dpu_rebooted:

            async def dpu_reboot() -> None:
                p.dpu_rebooted_by = await self._wait_dpu_back(target, p)
                p.dpu_rebooted = True
                log.info("DPU %s is back after its reboot (%s)", ref.name, _BACK_BY[p.dpu_rebooted_by],
                         extra={"dpu": ref.name, "by": p.dpu_rebooted_by})  # fmt: skip

            return _Background("waiting for the DPU to reboot", dpu_reboot)
        if p.host_rebooted:
            return _ADVANCE
        method = _host_reboot_method(intent)
        if method == "skip":
            p.host_rebooted = True
            return _ADVANCE
        # Done once the host has been up for less time than has passed since the flash was activated.
        since = self.deps.clock() - p.activated_at
        if p.host_reboot_requested_at or method == "manual":
            if self.deps.power.uptime() < since:
                p.host_rebooted = True
                return _ADVANCE
            waited = self.deps.clock() - p.host_reboot_requested_at
            if method != "manual" and waited > self.deps.host_reboot_timeout:
                # The reboot was asked for but never happened (the command did nothing, or dpfd died before the
                # BMC acted): an error, retried with backoff, which asks again.
                p.host_reboot_requested_at = 0.0
                self._fail(ref, p, "HostRebootTimeout", f"host {self.node} did not reboot ({method}) within "
                           f"{self.deps.host_reboot_timeout:g}s of the request")  # fmt: skip
                return self._error_wait(ref, p) or _Wait(P.REASON_RETRYING, "retrying the host reboot", 0.0)
            if method == "manual":
                return _Wait(
                    P.REASON_WAITING, f"waiting for a manual reboot of {self.node}", self.deps.recheck_interval
                )
            return _Wait(P.REASON_IN_PROGRESS, f"host {self.node} is rebooting ({method})", self.deps.recheck_interval)

        async def reboot() -> None:
            await self._fence(ref)
            p.host_reboot_method = method
            p.host_reboot_requested_at = self.deps.clock()
            self._save(ref, p)
            await self.deps.power.reboot(method)

        return _Background(f"rebooting host {self.node} ({method})", reboot)

    async def _wait_dpu_back(self, target: DpuTarget, p: Progress) -> str:
        """Wait for the DPU to be back after Activate: DMS's RebootStatus or, with gossip, the DPU's own dpfd joining
        with a start time after the activation, whichever comes first. Which one it was: "dms" or "gossip".

        Both waits start over after a restart of this dpfd (what they compare with is in the progress), so the
        wait is as level-triggered as the rest of the machine."""

        async def dms() -> None:
            session = await self.deps.dms.session(target)
            try:
                await session.wait_reboot_done(self.deps.dpu_reboot_timeout)
            finally:
                await session.close()

        presence = self.deps.presence
        if presence is None:
            await dms()
            return "dms"
        by_dms = asyncio.ensure_future(dms())
        by_gossip = asyncio.ensure_future(
            presence.wait_started(self.node, target.pci_address, after=p.activated_at,
                                  not_at=p.dpu_dpfd_started_before, within=self.deps.dpu_reboot_timeout)
        )  # fmt: skip
        try:
            await asyncio.wait({by_dms, by_gossip}, return_when=asyncio.FIRST_COMPLETED)
            if by_gossip.done() and not by_gossip.cancelled() and by_gossip.exception() is None and by_gossip.result():
                return "gossip"
            await by_dms  # DMS answered (or failed: that is the phase's error), or gossip gave up first
            return "dms"
        finally:
            for task in (by_dms, by_gossip):
                task.cancel()
            await asyncio.gather(by_dms, by_gossip, return_exceptions=True)

    def _dpu_dpfd_started(self, target: DpuTarget) -> float | None:
        presence = self.deps.presence
        return presence.started(self.node, target.pci_address) if presence is not None else None

    async def _host_network(self, ref: ObjectRef, target: DpuTarget, intent: Intent, p: Progress) -> None:
        num_vfs = int(intent.context.get("numVFs") or self.deps.num_vfs)
        mtu = int(intent.context.get("mtu") or self.deps.mtu)
        await self._fence(ref)
        self._live[ref] = await self.deps.network.configure(target, num_vfs=num_vfs, mtu=mtu)
        p.host_network_ready = True

    # -- background work ----------------------------------------------------------------------------

    def _start(self, ref: ObjectRef, p: Progress, bg: _Background) -> None:
        async def run() -> None:
            try:
                await bg.work()
                self._save(ref, p)  # what the step learned (marks, digests) is on disk before the next reconcile
            finally:
                self._kick(ref, 0.0)

        task = asyncio.get_running_loop().create_task(run(), name=f"{bg.what} {ref.name}")
        self._tasks[ref] = (bg.what, task)
        self._kick(ref, self.deps.progress_interval)  # to report how far it got

    def _consume_task(self, ref: ObjectRef, p: Progress) -> StepOutcome | None:
        """Take the result of the DPU's finished background task: a failure becomes the phase's error."""
        entry = self._tasks.get(ref)
        if entry is None or not entry[1].done():
            return None
        del self._tasks[ref]
        what, task = entry
        self._live.pop(ref, None)
        if task.cancelled():
            return None
        exc = task.exception()
        if exc is None:
            # Backoff grows until the phase that failed gets through, not whenever an earlier one does on the
            # way back to it after a retry.
            if not p.failed_phase or _at_or_after(p.phase, p.failed_phase):
                p.attempts, p.failed_phase = 0, ""
            p.error = None
            # The phase's work is done: move past it.
            nxt = P.HAPPY_PATH.index(p.phase) + 1 if p.phase in P.HAPPY_PATH else 0
            if p.phase not in (P.REBOOTING,):  # Rebooting has two parts (DPU, host): re-check it
                p.enter(P.HAPPY_PATH[min(nxt, len(P.HAPPY_PATH) - 1)])
            return None
        reason = exc.reason if isinstance(exc, ProvisioningFailure) else _reason_of(p.phase)
        message = exc.message if isinstance(exc, ProvisioningFailure) else f"{what}: {type(exc).__name__}: {exc}"
        if p.phase == P.PENDING:
            # A BFB that cannot be had leaves the DPU Pending with the reason (DPF leaves users guessing here).
            p.attempts += 1
            delay = self.deps.retry.delay(p.attempts)
            self._kick(ref, delay)
            return _Wait(reason, f"{message} (attempt {p.attempts}, retrying in {delay:.0f}s)")
        self._fail(ref, p, reason, message)
        return None

    def _fail(self, ref: ObjectRef, p: Progress, reason: str, message: str) -> None:
        p.attempts += 1
        p.failed_phase = p.phase
        now = self.deps.clock()
        p.error = StepError(phase=p.phase, reason=reason, message=message, at=now)
        delay = self.deps.retry.delay(p.attempts)
        p.next_retry_at = now + delay
        p.enter(P.ERROR)
        log.warning("provisioning failed", extra={"dpu": ref.name, "phase": p.error.phase, "reason": reason,
                                                  "error": message, "attempt": p.attempts, "retry_in": round(delay, 1)})  # fmt: skip

    def _error_wait(self, ref: ObjectRef, p: Progress) -> _Wait | None:
        """In Error: wait for the retry time; then resume at Node Effect (the effect was reverted at Error)."""
        assert p.error is not None
        left = p.next_retry_at - self.deps.clock()
        if left > 0:
            self._kick(ref, left)
            return _Wait(p.error.reason, f"{p.error.message} (attempt {p.attempts}; retrying in {left:.0f}s)")
        p.error = None
        p.enter(P.NODE_EFFECT)
        return None

    def _operator_asks(self, ref: ObjectRef, intent: Intent, p: Progress | None) -> bool:
        """A reflash was asked for that is not honoured yet (it cancels the running step)."""
        if p is None:
            return False
        local = self.requests.dpu(ref).reflash
        annotated = intent.annotations.get(ANNOTATION_REFLASH, p.reflash_nonce) != p.reflash_nonce
        return annotated or (bool(local) and local != p.operator_reflash)

    def _operator_requests(self, ref: ObjectRef, intent: Intent, p: Progress) -> None:
        """Honour new retry and reflash requests: from the DPU's annotations, and from dpfctl on this host."""
        local = self.requests.dpu(ref)
        retry = intent.annotations.get(ANNOTATION_RETRY, "")
        if retry and retry != p.retry_nonce:
            p.retry_nonce = retry
            p.next_retry_at = 0.0
        if local.retry and local.retry != p.operator_retry:
            p.operator_retry = local.retry
            p.next_retry_at = 0.0
            log.info("DPU %s: retry requested on the host", ref.name, extra={"dpu": ref.name, "request": local.retry})
        reflash = intent.annotations.get(ANNOTATION_REFLASH, "")
        if reflash and reflash != p.reflash_nonce:
            p.reflash_nonce = reflash
            self._reflash(p)
        if local.reflash and local.reflash != p.operator_reflash:
            p.operator_reflash = local.reflash
            self._reflash(p)
            log.info("DPU %s: reflash requested on the host", ref.name,
                     extra={"dpu": ref.name, "request": local.reflash})  # fmt: skip

    @staticmethod
    def _reflash(p: Progress) -> None:
        p.reset_install()
        p.error = None
        p.attempts = 0
        p.enter(P.INITIALIZING)

    def _drain_hold(self, p: Progress) -> _Wait | None:
        """On a drained host a DPU that is not Ready stays where it is (no new step, no retry) until undrained."""
        if p.phase == P.READY:
            return None
        drained = self.requests.drain_state()
        if drained is None:
            return None
        why = f": {drained.reason}" if drained.reason else ""
        return _Wait(P.REASON_DRAINED, f"host {self.node} is drained{why} (dpfctl uncordon resumes)")

    async def _cancel(self, ref: ObjectRef) -> None:
        entry = self._tasks.pop(ref, None)
        self._live.pop(ref, None)
        if entry is not None:
            entry[1].cancel()
            with contextlib.suppress(BaseException):
                await entry[1]

    async def close(self) -> None:
        for ref in list(self._tasks):
            await self._cancel(ref)
        if self._locks is not None:
            await self._locks.close()

    # -- ownership ----------------------------------------------------------------------------------

    async def _claim(self, ref: ObjectRef, p: Progress) -> StepOutcome | None:
        """None when this process owns the DPU (its lock's token is recorded), else what to do meanwhile."""
        if self._locks is None:
            return None
        claim: Claim = await self._locks.claim(ref)
        if claim.held:
            p.fencing_token = claim.token
            return None
        if claim.problem:
            return _Wait(REASON_LOCKED, f"cannot own DPU {ref.name}: {claim.problem}", self.deps.recheck_interval)
        return _NotOurs(claim.holder)

    async def _fence(self, ref: ObjectRef) -> None:
        if self._locks is not None:
            await self._locks.check(ref)

    async def _release(self, ref: ObjectRef) -> None:
        if self._locks is not None:
            await self._locks.release(ref)

    # -- state --------------------------------------------------------------------------------------

    def _install_id(self, intent: Intent) -> str:
        bfb = intent.context.get("bfb") or {}
        return install_identity(str(bfb.get("fileName") or ""), str(bfb.get("url") or ""),
                                intent.context.get("flavor") or {}, {"flavorName": intent.spec.get("dpuFlavor")})  # fmt: skip

    def _load(self, ref: ObjectRef, intent: Intent) -> Progress:
        p = self.progress.load(ref)
        if p is None or p.uid != intent.uid:
            p = Progress(uid=intent.uid)
            p.history = [PhaseEntry(phase=p.phase, at=self.deps.clock())]
        install_id = self._install_id(intent)
        if p.install_id != install_id:
            if p.install_id:  # a new BFB or flavor for the same DPU: flash again
                p.reset_install()
                p.bfb_digest = ""
                p.enter(P.INITIALIZING)
            p.install_id = install_id
        return p

    def _save(self, ref: ObjectRef, p: Progress) -> None:
        self.progress.save(ref, p)

    def _bf_cfg_context(self, ref: ObjectRef, intent: Intent) -> dict[str, Any]:
        return {
            "dpuName": ref.name,
            "nodeName": self.node,
            "pciAddress": str(intent.spec.get("pciAddress") or ""),
            "cluster": intent.context.get("cluster") or {},
            "dpfd": intent.context.get("dpfd") or {},
            "bfb": intent.context.get("bfb") or {},
        }

    # -- reports ------------------------------------------------------------------------------------

    def _report(self, intent: Intent, p: Progress, outcome: StepOutcome) -> Report:
        conditions: list[Condition] = []
        gen = intent.generation
        for phase in P.HAPPY_PATH[:-1]:
            cond_type = P.CONDITION_OF_PHASE[phase]
            if _passed(p, phase):
                cond = Condition(type=cond_type, status="True", reason=P.REASON_DONE, message=_done_message(p, phase),
                                 observedGeneration=gen)  # fmt: skip
            elif p.error is not None and p.error.phase == phase:
                cond = Condition(type=cond_type, status="False", reason=p.error.reason, message=p.error.message[:32768],
                                 observedGeneration=gen)  # fmt: skip
            elif phase == p.phase and isinstance(outcome, _Wait):
                cond = Condition(type=cond_type, status="False", reason=outcome.reason, message=outcome.message,
                                 observedGeneration=gen)  # fmt: skip
            else:
                continue
            conditions = set_condition(conditions, cond)
        if isinstance(outcome, _Wait) and outcome.recheck is not None:
            self._kick(intent.ref, outcome.recheck)
        details: dict[str, Any] = {"nodeEffect": _node_effect_request(intent, p)}
        live = self._live.get(intent.ref)
        if live:
            details["progress"] = dict(live)
        if p.error is not None:
            details["retryAt"] = p.next_retry_at
            details["attempts"] = p.attempts
        if p.dpu_rebooted_by:
            details["dpuRebootedBy"] = p.dpu_rebooted_by
        if p.fencing_token:
            details["lock"] = {"name": lock_name(intent.ref), "token": p.fencing_token}
        return Report(node=self.node, ref=intent.ref, uid=intent.uid, observedGeneration=gen, phase=p.phase,
                      conditions=conditions, details=details)  # fmt: skip

    def _deleting_report(self, intent: Intent, p: Progress) -> Report:
        return Report(node=self.node, ref=intent.ref, uid=intent.uid, observedGeneration=intent.generation,
                      phase=P.DELETING, details={"released": True, "nodeEffect": {"request": "revert"}})  # fmt: skip


def _target(ref: ObjectRef, intent: Intent) -> DpuTarget:
    return DpuTarget(name=ref.name, namespace=ref.namespace, pci_address=str(intent.spec.get("pciAddress") or ""),
                     node=intent.node)  # fmt: skip


def _node_effect(intent: Intent) -> StepOutcome:
    effect = intent.spec.get("nodeEffect") or {}
    if effect.get("noEffect"):
        return _ADVANCE
    answer = intent.context.get("nodeEffect") or {}
    if answer.get("applied"):
        return _ADVANCE
    return _Wait(P.REASON_IN_PROGRESS, str(answer.get("message") or "waiting for the node effect to be applied"))


def _node_effect_request(intent: Intent, p: Progress) -> dict[str, Any]:
    """What the host asks of the controller for its Node: apply the effect while flashing, revert otherwise."""
    effect = intent.spec.get("nodeEffect") or {}
    if effect.get("noEffect"):
        return {"request": "none"}
    applying = p.phase in P.HAPPY_PATH[1 : P.HAPPY_PATH.index(P.READY)]
    return {"request": "apply" if applying else "revert", "effect": effect}


def _host_reboot_method(intent: Intent) -> str:
    """DPF's choice: power cycle when the flash needs it, else a warm reset; Node annotations may say skip;
    without automatic reboot, someone reboots the host by hand."""
    effect = intent.spec.get("nodeEffect") or {}
    automatic = bool(intent.spec.get("automaticNodeReboot", True)) or bool((effect.get("drain") or {}).get(
        "automaticNodeReboot"))  # fmt: skip
    host = intent.context.get("hostAnnotations") or {}
    if intent.annotations.get(P.ANNOTATION_POWER_CYCLE_REQUIRED) == "true":
        command = host.get(P.ANNOTATION_POWERCYCLE_COMMAND, "cycle")
    else:
        command = host.get(P.ANNOTATION_REBOOT_COMMAND, "reset")
    if command == "skip":
        return "skip"
    return command if automatic else "manual"


def _done_message(p: Progress, phase: str) -> str:
    """What a finished phase's condition says: for Rebooted, what told the host that the DPU was back."""
    if phase == P.REBOOTING and p.dpu_rebooted_by:
        return f"DPU back: {_BACK_BY.get(p.dpu_rebooted_by, p.dpu_rebooted_by)}"
    return ""


def _at_or_after(phase: str, other: str) -> bool:
    order = P.HAPPY_PATH
    return phase in order and other in order and order.index(phase) >= order.index(other)


def _passed(p: Progress, phase: str) -> bool:
    if p.phase not in P.HAPPY_PATH:
        # In Error: the phases before the failed one are done.
        failed = p.error.phase if p.error is not None else P.INITIALIZING
        return failed in P.HAPPY_PATH and P.HAPPY_PATH.index(phase) < P.HAPPY_PATH.index(failed)
    return P.HAPPY_PATH.index(phase) < P.HAPPY_PATH.index(p.phase)


def _reason_of(phase: str) -> str:
    return P.REASON_INSTALL_FAILED if phase == P.OS_INSTALLING else f"{phase.title().replace(' ', '')}Failed"
