"""The node agent: registration, intent watch, per-kind reconcilers and report writing."""

from dpfd.agent.agent import RECONCILED, AgentOptions, NodeAgent
from dpfd.agent.backoff import Backoff
from dpfd.agent.reconciler import LocalStateReconciler, Reconciler
from dpfd.agent.report_writer import ReportRefused, ReportWriter

__all__ = [
    "RECONCILED",
    "AgentOptions",
    "Backoff",
    "LocalStateReconciler",
    "NodeAgent",
    "Reconciler",
    "ReportRefused",
    "ReportWriter",
]
