"""NodeAgent: one node's dpfd core. Registers the node, watches its intents, runs reconcilers, reports.

Many agents can share one process and one Store (the benchmark runs 1,000 per process): an agent owns
only tasks and small dicts, and all its etcd traffic goes through the shared Store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dpfd.agent.backoff import Backoff
from dpfd.agent.intent_view import IntentEntry, IntentView
from dpfd.agent.keyed_runner import KeyedRunner
from dpfd.agent.log import EventLog, obj, reconciling
from dpfd.agent.reconciler import AgentLink, KickingReconciler, LocalStateReconciler, Reconciler
from dpfd.agent.report_writer import ReportWriter
from dpfd.api.conditions import Condition, now_rfc3339, set_condition
from dpfd.api.intents import ObjectRef, Report
from dpfd.config import DpfdConfig
from dpfd.metrics.instruments import RECONCILE_ERRORS, RECONCILE_SECONDS
from dpfd.store import Session, Store, WatchEvent, keys

# Condition the agent adds to a report when reconciling fails or cannot start; the reconciler's next
# successful report replaces the whole report and so clears it.
RECONCILED = "Reconciled"


@dataclass(frozen=True)
class AgentOptions:
    version: str = "0"
    addresses: tuple[str, ...] = ()
    gossip_addr: str | None = None  # this dpfd's gossip address: the member value carries it, others join through it
    resync_interval: float = 300.0
    # An int gives this agent its own limit; a shared Semaphore bounds many agents together.
    concurrency: int | asyncio.Semaphore = 4
    retry: Backoff = field(default_factory=Backoff)
    reconnect: Backoff = field(default_factory=lambda: Backoff(base=0.2, cap=5.0))
    report_batch_delay: float = 0.01
    shutdown_timeout: float = 10.0
    etcd_op_timeout: float = 5.0
    # Told True on every (re)registration and False when the session is lost (the daemon sets STATUS=).
    on_connection_change: Callable[[bool], object] | None = None


class NodeAgent:
    def __init__(
        self,
        config: DpfdConfig,
        store: Store,
        reconcilers: Iterable[Reconciler],
        options: AgentOptions | None = None,
    ) -> None:
        self.config = config
        self.node = config.node
        self.store = store
        self.options = options or AgentOptions()
        self._reconcilers: dict[str, Reconciler] = {}
        self.session: Session | None = None
        link = AgentLink(
            kick=self.kick,
            store=store,
            session=self._live_session,
            holder=f"{self.node} pid {os.getpid()}",
            kick_kind=self.kick_kind,
            refs=self.refs_of,
        )
        for r in reconcilers:
            if r.kind in self._reconcilers:
                raise ValueError(f"node {self.node}: two reconcilers for kind {r.kind!r}")
            self._reconcilers[r.kind] = r
            if isinstance(r, KickingReconciler):
                r.bind(link)
        self.view = IntentView(self.node)
        self.writer = ReportWriter(store, self.node, batch_delay=self.options.report_batch_delay)
        self._runner: KeyedRunner[ObjectRef] = KeyedRunner(self._reconcile_ref, self.options.concurrency)
        self._log = EventLog(logging.getLogger(__name__), node=self.node)
        self.fencing_token = 0
        self.registrations = 0
        self.registered = asyncio.Event()  # the first registration happened
        self.ready = asyncio.Event()  # the first list of intents was applied
        self.connected = False  # holding a live session now
        self.started_at = now_rfc3339()
        self._failures: dict[ObjectRef, int] = {}
        self._deferred: set[ObjectRef] = set()  # kicked before the first registration
        self._stopping = asyncio.Event()
        self._kick_all_on_reset = False
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start in the background; does not need etcd to be up (it keeps trying)."""
        self.writer.start()
        self._spawn("session", self._session_loop())
        self._spawn("watch", self._watch_loop())
        self._spawn("resync", self._resync_loop())

    async def stop(self, grace: float | None = None) -> bool:
        """Stop taking work, let running reconciles finish (bounded), flush reports, deregister.

        Returns True if in-flight work finished and reports were flushed in time.
        """
        grace = self.options.shutdown_timeout if grace is None else grace
        self._stopping.set()
        await self._cancel_tasks("watch", "resync")
        finished = await self._runner.stop(grace)
        for r in self._reconcilers.values():
            if isinstance(r, KickingReconciler):
                await r.close()  # background work (downloads, DMS calls) stops; its progress is on disk
        flushed = await self.writer.flush(min(5.0, max(grace, 0.1)))
        await self.writer.stop()
        await self._cancel_tasks("session")
        await self._deregister()
        self._log.info("agent_stopped", finished=finished, flushed=flushed)
        return finished and flushed

    async def wait_ready(self, within: float) -> bool:
        try:
            await asyncio.wait_for(self.ready.wait(), within)
            return True
        except TimeoutError:
            return False

    @property
    def busy(self) -> int:
        return self._runner.busy

    def _spawn(self, name: str, coro: Any) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(coro, name=f"{name} {self.node}")

    async def _cancel_tasks(self, *names: str) -> None:
        tasks = [t for n in names if (t := self._tasks.pop(n, None)) is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    # -- session and membership --------------------------------------------------------------------

    def _live_session(self) -> Session | None:
        s = self.session
        return s if s is not None and not s.lost.is_set() else None

    def member_value(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "node": self.node,
            "role": self.config.role,
            "version": self.options.version,
            "addresses": list(self.options.addresses),
            "pid": os.getpid(),
            "startedAt": self.started_at,
        }
        if self.options.gossip_addr:
            value["gossip"] = self.options.gossip_addr  # dpfd.gossip.agent.etcd_seeds reads it
        return value

    async def _session_loop(self) -> None:
        attempt = 0
        while True:
            try:
                await self._register()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                attempt += 1
                delay = self.options.reconnect.delay(attempt)
                if attempt == 1 or attempt % 10 == 0:
                    self._log.warning("register_failed", attempt=attempt, error=_err(e), retry_in=f"{delay:.2f}s")
                await asyncio.sleep(delay)
                continue
            attempt = 0
            assert self.session is not None
            await self.session.lost.wait()
            self.connected = False
            # Keep the machine as it is: nothing is torn down because etcd went away.
            self._log.warning("session_lost", fencing_token=self.fencing_token, reason=self.session.lost_reason)
            self._notify_connection(False)

    async def _register(self) -> None:
        session = await asyncio.wait_for(self.store.session(ttl=self.config.session_ttl), self.options.etcd_op_timeout)
        try:
            value = json.dumps(self.member_value(), separators=(",", ":")).encode()
            rev = await asyncio.wait_for(
                self.store.put(keys.member_key(self.node), value, lease=session.lease_id),
                self.options.etcd_op_timeout,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.close(), 1.0)
            raise
        self.session = session
        self.fencing_token = rev
        self.connected = True
        self.registrations += 1
        self._log.info("registered", fencing_token=rev, lease=session.lease_id, incarnation=self.registrations)
        self._notify_connection(True)
        if self.registered.is_set():
            # A new incarnation: re-list, and re-run everything so reports carry the new fencing token.
            self._relist(kick_all=True)
            return
        self.registered.set()
        for ref in self._deferred:
            self._runner.kick(ref)
        self._deferred.clear()

    def _notify_connection(self, connected: bool) -> None:
        if self.options.on_connection_change is not None:
            try:
                self.options.on_connection_change(connected)
            except Exception as e:
                self._log.warning("connection_callback_failed", error=_err(e))

    async def _deregister(self) -> None:
        session, self.session = self.session, None
        self.connected = False
        if session is None:
            return
        # Revoking the lease removes the member key with it, and cannot remove a newer incarnation's key
        # (that one is bound to another lease).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.close(), self.options.etcd_op_timeout)
            self._log.info("deregistered", fencing_token=self.fencing_token)

    # -- intents -----------------------------------------------------------------------------------

    def _relist(self, kick_all: bool) -> None:
        if self._stopping.is_set():
            return
        self._kick_all_on_reset = self._kick_all_on_reset or kick_all
        old = self._tasks.pop("watch", None)
        if old is not None:
            old.cancel()
        self._spawn("watch", self._watch_loop())

    async def _watch_loop(self) -> None:
        attempt = 0
        while True:
            watch = self.store.watch_prefix(self.view.prefix)
            error = "watch ended"
            try:
                async for ev in watch:
                    attempt = 0
                    await self._on_event(ev)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = _err(e)
            finally:
                await _close_iter(watch)
            # The store's watch survives failover by itself; ending means something worse: start over.
            attempt += 1
            delay = self.options.reconnect.delay(attempt)
            self._log.warning("watch_failed", error=error, retry_in=f"{delay:.2f}s")
            await asyncio.sleep(delay)

    async def _on_event(self, ev: WatchEvent) -> None:
        if ev.type == "RESET":
            changed = self.view.reset(list(ev.snapshot or []))
            changed |= await self._orphans()
            if self._kick_all_on_reset:
                changed |= set(self.view.refs())
                self._kick_all_on_reset = False
            self._log.info("intents_listed", intents=len(self.view), changed=len(changed), revision=ev.revision)
            for ref in changed:
                self._runner.kick(ref)
            self.ready.set()
        elif ev.kv is not None:
            touched = self.view.put(ev.kv) if ev.type == "PUT" else self.view.delete(ev.kv.key)
            if touched is not None:
                self._runner.kick(touched)

    async def _orphans(self) -> set[ObjectRef]:
        """Refs with a report or local state but no intent: released and their reports deleted."""
        found: set[ObjectRef] = set()
        try:
            kvs, _ = await asyncio.wait_for(
                self.store.get_prefix(keys.reports_prefix(self.node)), self.options.etcd_op_timeout
            )
            found.update(self.writer.seed(kvs))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._log.warning("list_reports_failed", error=_err(e))
        for r in self._reconcilers.values():
            if isinstance(r, LocalStateReconciler):
                try:
                    found.update(r.local_refs())
                except Exception as e:
                    self._log.warning("local_refs_failed", kind=r.kind, error=_err(e))
        return {ref for ref in found if self.view.get(ref) is None}

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.resync_interval * random.uniform(0.9, 1.1))
            if not self.ready.is_set():
                continue
            for ref in self.view.refs():
                if not self._runner.has_delayed(ref):  # a retry is already scheduled for it
                    self._runner.kick(ref)

    # -- reconciling -------------------------------------------------------------------------------

    def kick(self, ref: ObjectRef, delay: float = 0.0) -> None:
        """Reconcile `ref` again, now or after `delay` seconds (reconcilers call this when background work ends)."""
        if delay <= 0:
            self._runner.cancel_delayed(ref)
            self._runner.kick(ref)
        else:
            self._runner.kick_after(ref, delay)

    def kick_kind(self, kind: str) -> None:
        """Reconcile every intent of `kind` again now."""
        for ref in self.refs_of(kind):
            self.kick(ref)

    def refs_of(self, kind: str) -> list[ObjectRef]:
        """This node's intents of `kind`."""
        return [ref for ref in self.view.refs() if ref.kind == kind]

    async def _reconcile_ref(self, ref: ObjectRef) -> None:
        with reconciling(ref):  # every log line of this reconcile names its object
            await self._reconcile_ref_now(ref)

    async def _reconcile_ref_now(self, ref: ObjectRef) -> None:
        if not self.registered.is_set():
            # Reports carry the fencing token, so no work before the first registration, which kicks
            # these again. Returning (not waiting) keeps a shared concurrency slot free meanwhile.
            self._deferred.add(ref)
            return
        # Running now: a pending delayed kick is spent. Cancelled before (not after) the reconcile, so a delayed
        # kick the reconciler asks for while it runs (a recheck, a retry) stays scheduled.
        self._runner.cancel_delayed(ref)
        entry = self.view.get(ref)
        reconciler = self._reconcilers.get(ref.kind)
        token = self.fencing_token
        if entry is None:
            await self._release(ref, reconciler)
            return
        if entry.intent is None:
            self._log.error("invalid_intent", object=obj(ref), error=entry.error)
            self._report_problem(ref, entry, "InvalidIntent", f"intent for {obj(ref)} is invalid: {entry.error}")
            return
        if reconciler is None:
            self._report_problem(
                ref,
                entry,
                "KindNotHandled",
                f"dpfd role {self.config.role} has no reconciler for kind {ref.kind}",
            )
            return
        started = time.perf_counter()
        try:
            report = await reconciler.reconcile(ref, entry.intent)
            stamped = report.model_copy(update={"fencingToken": token}) if report is not None else None
            changed = stamped is not None and self.writer.submit(stamped)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            _measure(ref.kind, started, failed=True)
            self._failed(ref, entry, e)
            return
        _measure(ref.kind, started, failed=False)
        self._succeeded(ref)
        # Resyncs that change nothing stay out of the info log.
        (self._log.info if changed else self._log.debug)(
            "reconciled", object=obj(ref), generation=entry.generation, phase=report.phase if report else None
        )

    async def _release(self, ref: ObjectRef, reconciler: Reconciler | None) -> None:
        if reconciler is not None:
            started = time.perf_counter()
            try:
                await reconciler.reconcile(ref, None)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                _measure(ref.kind, started, failed=True)
                self._failed(ref, None, e)
                return
            _measure(ref.kind, started, failed=False)
        self._succeeded(ref)
        if self.writer.delete(ref):
            self._log.info("released", object=obj(ref))

    def _succeeded(self, ref: ObjectRef) -> None:
        self._failures.pop(ref, None)

    def _failed(self, ref: ObjectRef, entry: IntentEntry | None, e: Exception) -> None:
        n = self._failures[ref] = self._failures.get(ref, 0) + 1
        delay = self.options.retry.delay(n)
        self._log.error("reconcile_failed", object=obj(ref), attempt=n, retry_in=f"{delay:.2f}s", error=_err(e))
        if entry is not None:
            self._report_problem(
                ref, entry, "ReconcileFailed", f"{_err(e)} (attempt {n}, retrying in {delay:.1f}s)", retries=n
            )
        self._runner.kick_after(ref, delay)

    def _report_problem(self, ref: ObjectRef, entry: IntentEntry, reason: str, message: str, retries: int = 0) -> None:
        """Report why the intent is not converging, keeping the phase and conditions last reported."""
        prev = self.writer.current(ref)
        conditions = [Condition.model_validate(c) for c in prev.get("conditions", [])] if prev else []
        cond = Condition(type=RECONCILED, status="False", reason=reason, message=message[:32768],
                         observedGeneration=entry.generation)  # fmt: skip
        details = dict(prev.get("details", {})) if prev else {}
        if retries:
            details["retries"] = retries
        report = Report(
            node=self.node,
            ref=ref,
            uid=entry.intent.uid if entry.intent else "",
            observedGeneration=entry.generation,
            phase=prev.get("phase", "") if prev else "",
            conditions=set_condition(conditions, cond),
            fencingToken=self.fencing_token,
            details=details,
        )
        try:
            self.writer.submit(report)
        except ValueError as e:
            self._log.error("report_refused", object=obj(ref), error=_err(e))


def _measure(kind: str, started: float, *, failed: bool) -> None:
    RECONCILE_SECONDS.labels(kind, "error" if failed else "success").observe(time.perf_counter() - started)
    if failed:
        RECONCILE_ERRORS.labels(kind).inc()


async def _close_iter(it: object) -> None:
    """Close a watch iterator if it can be closed (releases its etcd watch)."""
    for name in ("aclose", "close"):
        fn = getattr(it, name, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                res = fn()
                if asyncio.iscoroutine(res):
                    await res
            return


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
