"""Metrics read at scrape time from the parts of a running daemon: the process, the node agent, the store, gossip.

Each `*_metrics` function adds CallbackMetrics to a CollectorGroup, which the daemon closes when the part stops.
The parts keep their own plain counters (gossip's PacketStats, the transport's counters, the agent's flags); this
only reads them, so measuring costs their hot paths nothing.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from dpfd.metrics.registry import CallbackMetric, CollectorGroup, Reading

if TYPE_CHECKING:
    from dpfd.agent.agent import NodeAgent
    from dpfd.gossip.agent import GossipAgent
    from dpfd.store import Store

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STARTED = time.time()  # the fallback start time, where /proc cannot say


class Metrics(CollectorGroup):
    """A CollectorGroup with shorthands for callback counters and gauges."""

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.add(CallbackMetric.single(name, help, "gauge", read, registry=None))

    def counter(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.add(CallbackMetric.single(name, help, "counter", read, registry=None))

    def labelled(
        self,
        type: Literal["counter", "gauge"],
        name: str,
        help: str,
        labels: Sequence[str],
        read: Callable[[], Reading],
    ) -> None:
        """A counter or gauge with labels: `read()` gives (label values, value) pairs."""
        self.add(CallbackMetric(name, help, type, read, labels, registry=None))


# -- the process ---------------------------------------------------------------------------------------------------


def process_metrics(m: Metrics, component: str, version: str, **info: str) -> None:
    """The standard process_* metrics and `dpf_build_info` (the version and what else identifies this process)."""
    labels = {"component": component, "version": version, **info}
    names = tuple(labels)
    m.labelled(
        "gauge",
        "dpf_build_info",
        "Always 1; its labels say which dpf component and version this is.",
        names,
        lambda: [(tuple(labels.values()), 1.0)],
    )
    m.counter("process_cpu_seconds_total", "User and system CPU time the process has used.", _cpu_seconds)
    m.gauge("process_resident_memory_bytes", "Resident memory of the process.", _resident_bytes)
    m.gauge("process_open_fds", "File descriptors the process has open.", _open_fds)
    start = _start_time()
    m.gauge("process_start_time_seconds", "When the process started, in seconds since the Unix epoch.", lambda: start)


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _resident_bytes() -> float:
    try:
        with open("/proc/self/statm", "rb") as f:
            return float(int(f.read().split()[1]) * _PAGE_SIZE)
    except (OSError, ValueError, IndexError):
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _open_fds() -> float:
    try:
        return float(len(os.listdir("/proc/self/fd")))
    except OSError:
        return float("nan")


def _start_time() -> float:
    """From /proc: the process' start in clock ticks after boot, plus the boot time."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        ticks = int(fields[19])  # field 22 of stat(5); the first two (pid, comm) are before ")"
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _STARTED


# -- dpfd's node agent ---------------------------------------------------------------------------------------------


def agent_metrics(m: Metrics, agent: NodeAgent) -> None:
    """What the node agent holds: its intents, the phases it reports, its etcd session."""
    m.labelled("gauge", "dpf_intents", "Intents addressed to this node, by kind.", ["kind"], lambda: _by_kind(agent))
    m.labelled(
        "gauge",
        "dpf_reported_objects",
        "Objects this node reports, by kind and the phase last reported (DPUs by phase on a host).",
        ["kind", "phase"],
        lambda: [(kp, float(n)) for kp, n in agent.writer.phase_counts().items()],
    )
    m.gauge("dpf_reconciles_in_flight", "Objects being reconciled, or queued to be, now.", lambda: float(agent.busy))
    m.gauge("dpf_reports_pending", "Reports queued or being written to etcd.", lambda: float(agent.writer.pending))
    m.counter("dpf_report_commits_total", "Batches of reports written to etcd.", lambda: float(agent.writer.commits))
    m.gauge(
        "dpf_etcd_session_up",
        "1 while this dpfd holds a live etcd session (it is registered), else 0.",
        lambda: 1.0 if agent.connected else 0.0,
    )
    m.counter(
        "dpf_etcd_registrations_total",
        "Times this dpfd registered in etcd (a new session each time; more than one means sessions were lost).",
        lambda: float(agent.registrations),
    )


def _by_kind(agent: NodeAgent) -> Reading:
    tally = Tally(ref.kind for ref in agent.view.refs())
    return [((kind,), float(n)) for kind, n in tally.items()]


# -- the store -----------------------------------------------------------------------------------------------------


def store_metrics(m: Metrics, store: Store) -> None:
    """The store's stream health (request latencies are in dpfd.metrics.instruments)."""
    m.counter(
        "dpf_etcd_reconnects_total",
        "etcd endpoint switches and watch/keepalive stream re-opens.",
        lambda: float(store.stats.reconnects),
    )
    m.counter(
        "dpf_etcd_watch_events_total", "Events received on etcd watches.", lambda: float(store.stats.watch_events)
    )


# -- gossip --------------------------------------------------------------------------------------------------------

_MEMBER_STATES = ("alive", "suspect", "dead", "left")
_DROP_REASONS = ("forged", "replayed", "oversized", "malformed", "skewed")


def gossip_metrics(m: Metrics, gossip: GossipAgent) -> None:
    """The gossip member's view and traffic, read from the agent, its engine and its transport."""

    def members() -> Reading:
        if gossip.node is None:
            return []
        tally = Tally(member.state.value for member in gossip.node.members())
        return [((state,), float(tally.get(state, 0))) for state in _MEMBER_STATES]

    def health() -> float:
        return float(gossip.node.health_score) if gossip.node is not None else float("nan")

    def dropped() -> Reading:
        if gossip.node is None:
            return []
        stats = gossip.node.packet_stats
        reading = [((reason,), float(getattr(stats, reason))) for reason in _DROP_REASONS]
        # Authenticated, then undecodable: a peer speaking another wire version, or a bug.
        reading.append((("undecodable",), float(gossip.node.stats.malformed)))
        return reading

    def engine(field: str) -> Callable[[], float]:
        return lambda: float(getattr(gossip.node.stats, field)) if gossip.node is not None else 0.0

    c = gossip.runtime.counters
    m.labelled(
        "gauge", "dpf_gossip_members", "Gossip members this node knows, by state (itself included).", ["state"], members
    )
    m.gauge(
        "dpf_gossip_health_score", "Lifeguard local health: 0 is healthy; probe timeouts scale by score + 1.", health
    )
    m.labelled(
        "counter",
        "dpf_gossip_packets_sent_total",
        "Gossip messages sent, by transport (udp datagrams, tcp streams).",
        ["transport"],
        lambda: [(("udp",), float(c.packets_sent)), (("tcp",), float(c.streams_sent))],
    )
    m.labelled(
        "counter",
        "dpf_gossip_packets_received_total",
        "Gossip messages received, by transport.",
        ["transport"],
        lambda: [(("udp",), float(c.packets_received)), (("tcp",), float(c.streams_received))],
    )
    m.labelled(
        "counter",
        "dpf_gossip_bytes_sent_total",
        "Gossip payload bytes sent, by transport.",
        ["transport"],
        lambda: [(("udp",), float(c.packet_bytes_sent)), (("tcp",), float(c.stream_bytes_sent))],
    )
    m.labelled(
        "counter",
        "dpf_gossip_bytes_received_total",
        "Gossip payload bytes received, by transport.",
        ["transport"],
        lambda: [(("udp",), float(c.packet_bytes_received)), (("tcp",), float(c.stream_bytes_received))],
    )
    m.labelled(
        "counter",
        "dpf_gossip_packets_dropped_total",
        "Gossip packets and streams refused, by reason: forged (bad MAC or unknown key), replayed, oversized, "
        "malformed, skewed (clock), undecodable.",
        ["reason"],
        dropped,
    )
    m.counter("dpf_gossip_send_errors_total", "Gossip datagrams that could not be sent.", lambda: float(c.send_errors))
    m.counter(
        "dpf_gossip_stream_errors_total", "Gossip TCP streams that failed either way.", lambda: float(c.stream_errors)
    )
    m.counter("dpf_gossip_probes_total", "Failure-detector probes this member sent.", engine("probes"))
    m.counter(
        "dpf_gossip_probe_failures_total", "Probes that got no ack, directly or indirectly.", engine("probe_failures")
    )
    m.counter("dpf_gossip_suspicions_total", "Members this node started to suspect.", engine("suspicions_raised"))
    m.counter("dpf_gossip_refutations_total", "Times this member refuted a suspicion of itself.", engine("refutations"))
