"""A BFB's status from its hosts' download reports, in DPF's terms: Initializing → Downloading → Ready | Error.

Every host dpfd downloads the BFB into its own cache and reports Downloading (with progress), Ready, or Error
(a Ready=False condition whose reason is the FetchReason). The BFB is Ready when every host expected to hold it
reports Ready, Error as soon as any host failed (the condition names each failing host and why: DPF issue #29
left users guessing), Downloading once any host has started, Initializing before that.
"""

from __future__ import annotations

from typing import Any

from controller.kube.objects import Obj, generation_of, name_of, namespace_of, uid_of
from dpfd.api.conditions import Condition, find_condition, set_condition
from dpfd.api.intents import Report

READY = "Ready"
REASON_DOWNLOADED = "Downloaded"
REASON_DOWNLOADING = "Downloading"
REASON_INITIALIZING = "Initializing"
REASON_NO_HOSTS = "NoHosts"
REASON_DOWNLOAD_FAILED = "DownloadFailed"  # failing hosts disagree on the reason
REASON_DELETING = "Deleting"
MAX_MESSAGE = 32768


def file_name_of(bfb: Obj) -> str:
    """spec.fileName, or DPF's webhook default `<namespace>-<name>.bfb`."""
    name = (bfb.get("spec") or {}).get("fileName")
    return str(name) if name else f"{namespace_of(bfb) or 'default'}-{name_of(bfb)}.bfb"


def _failure(report: Report) -> tuple[str, str]:
    cond = find_condition(report.conditions, READY)
    reason = (cond.reason if cond is not None else "") or "Unknown"
    message = (cond.message if cond is not None else "") or "download failed"
    return reason, message


def _progress(report: Report) -> str:
    p = report.details.get("progress") or {}
    done, size = p.get("downloaded"), p.get("size")
    if isinstance(done, int) and isinstance(size, int) and size > 0:
        return f"{report.node} {done * 100 // size}%"
    if isinstance(done, int):
        return f"{report.node} {done} bytes"
    return report.node


def _names(nodes: list[str], limit: int = 10) -> str:
    shown = ", ".join(nodes[:limit])
    return shown + (f" and {len(nodes) - limit} more" if len(nodes) > limit else "")


def aggregate(bfb: Obj, hosts: list[str], reports: dict[str, Report]) -> tuple[str, str, str]:
    """(phase, Ready condition reason, message) from the reports of this BFB incarnation by `hosts` (the hosts
    expected to download it; reports of other nodes, such as hosts gone for good, do not count)."""
    uid = uid_of(bfb)
    expected = sorted(set(hosts))
    mine = {n: r for n in expected if (r := reports.get(n)) is not None and (not r.uid or not uid or r.uid == uid)}
    failed = [mine[n] for n in expected if n in mine and mine[n].phase == "Error"]
    if failed:
        causes = [_failure(r) for r in failed]
        reasons = {reason for reason, _ in causes}
        reason = reasons.pop() if len(reasons) == 1 else REASON_DOWNLOAD_FAILED
        details = "; ".join(f"{r.node}: {c_reason}: {msg}" for r, (c_reason, msg) in zip(failed, causes, strict=True))
        return "Error", reason, f"download failed on {len(failed)} of {len(expected)} host(s): {details}"
    if not expected:
        return "Initializing", REASON_NO_HOSTS, "no host dpfd is registered to download the BFB"
    ready = [n for n in expected if n in mine and mine[n].phase == "Ready"]
    if len(ready) == len(expected):
        return "Ready", REASON_DOWNLOADED, f"downloaded on {len(ready)} host(s)"
    busy = [mine[n] for n in expected if n in mine and mine[n].phase == "Downloading"]
    waiting = [n for n in expected if n not in mine or mine[n].phase not in ("Ready", "Downloading")]
    if ready or busy:
        parts = [f"downloaded on {len(ready)} of {len(expected)} host(s)"]
        if busy:
            parts.append("downloading on " + _names([_progress(r) for r in busy]))
        if waiting:
            parts.append("waiting for " + _names(waiting))
        return "Downloading", REASON_DOWNLOADING, "; ".join(parts)
    return "Initializing", REASON_INITIALIZING, f"waiting for {_names(waiting)} to start the download"


def bfb_status(bfb: Obj, hosts: list[str], reports: dict[str, Report], *, deleting_message: str = "") -> dict[str, Any]:
    """The BFB's whole status (phase, fileName, observedGeneration, conditions), keeping the Ready condition's
    lastTransitionTime while its status holds."""
    current = bfb.get("status") or {}
    if deleting_message:
        phase, reason, message = "Deleting", REASON_DELETING, deleting_message
    else:
        phase, reason, message = aggregate(bfb, hosts, reports)
    gen = generation_of(bfb)
    cond = Condition(
        type=READY,
        status="True" if phase == "Ready" else "False",
        reason=reason,
        message=message[:MAX_MESSAGE],
        observedGeneration=gen,
    )
    try:
        existing = [Condition.model_validate(c) for c in current.get("conditions") or []]
    except ValueError:
        existing = []
    conditions = set_condition(existing, cond)
    return {
        "phase": phase,
        "fileName": file_name_of(bfb),
        "observedGeneration": gen,
        "conditions": [c.model_dump(mode="json", exclude_none=True) for c in conditions],
    }
