"""A DPUService's conditions as DPF writes them (pure): DPUServiceInterfaceReconciled, ApplicationPrereqsReconciled,
ApplicationsReconciled, ApplicationsReady, and the Ready summary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from controller.kube.objects import Obj, generation_of, name_of, namespace_of
from dpfd.api.conditions import Condition

READY: Final = "Ready"
INTERFACES_RECONCILED: Final = "DPUServiceInterfaceReconciled"
PREREQS_RECONCILED: Final = "ApplicationPrereqsReconciled"
APPS_RECONCILED: Final = "ApplicationsReconciled"
APPS_READY: Final = "ApplicationsReady"
ROLLOUT_PROGRESSING: Final = "RolloutProgressing"  # beyond DPF: informational, left out of the Ready summary
OWN_CONDITIONS: Final = (READY, INTERFACES_RECONCILED, PREREQS_RECONCILED, APPS_RECONCILED, APPS_READY)
INFORMATIONAL: Final = (ROLLOUT_PROGRESSING,)

REASON_SUCCESS: Final = "Success"  # DPF's internal/conditions reasons
REASON_PENDING: Final = "Pending"
REASON_ERROR: Final = "Error"
REASON_AWAITING_DELETION: Final = "AwaitingDeletion"
REASON_ROLLING_OUT: Final = "RollingOut"  # RolloutProgressing's reasons (ours)
REASON_COMPLETE: Final = "Complete"


def cond(service: Obj, type_: str, ok: bool, reason: str = REASON_SUCCESS, message: str = "") -> Condition:
    return Condition(type=type_, status="True" if ok else "False", reason=reason, message=message,
                     observedGeneration=generation_of(service))  # fmt: skip


def app_state(app: Obj) -> tuple[str, str]:
    status = app.get("status") or {}
    return str((status.get("sync") or {}).get("status") or ""), str((status.get("health") or {}).get("status") or "")


def applications_ready(service: Obj, apps: Iterable[Obj], expected: int) -> Condition:
    """True iff every Application is Synced and Healthy and there are as many as destinations."""
    apps = list(apps)
    unready: list[str] = []
    for app in sorted(apps, key=name_of):
        sync, health = app_state(app)
        if sync == "Synced" and health == "Healthy":
            continue
        if not sync and not health:
            unready.append(f"Application {namespace_of(app)}/{name_of(app)} is not yet deployed.")
            continue
        unready.append(
            f"Application {namespace_of(app)}/{name_of(app)} is not ready (Sync: {sync}, Health: {health}). "
            f"Run 'kubectl describe application {name_of(app)} -n {namespace_of(app)}' for details."
        )
    if len(apps) != expected:
        unready.append(f"{len(apps)} of {expected} Applications exist")
    if unready:
        return cond(service, APPS_READY, False, REASON_PENDING, ", ".join(unready))
    return cond(service, APPS_READY, True)


def summary(service: Obj, conditions: Iterable[Condition]) -> Condition:
    """Ready: True when every other condition is; otherwise the first one that is not, by name and message."""
    order = {t: i for i, t in enumerate(OWN_CONDITIONS)}
    skip = (READY, *INFORMATIONAL)
    others = sorted((c for c in conditions if c.type not in skip), key=lambda c: order.get(c.type, len(order)))
    bad = next((c for c in others if c.status != "True"), None)
    if bad is None:
        return cond(service, READY, True)
    return cond(service, READY, False, bad.reason or REASON_PENDING, f"{bad.type}: {bad.message}".rstrip(": "))


def pending(service: Obj, type_: str) -> Condition:
    """A condition not evaluated yet (DPF's EnsureConditions)."""
    return Condition(type=type_, status="Unknown", reason=REASON_PENDING, observedGeneration=generation_of(service))
