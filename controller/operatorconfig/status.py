"""The DPFOperatorConfig's conditions as DPF writes them (pure): ImagePullSecretsReconciled,
SystemComponentsReconciled, SystemComponentsReady and the Ready summary (api/operator/v1alpha1, v24.10).

One addition: DPF writes nothing while paused; here Ready turns False with reason Paused, so `kubectl get` shows
why nothing moves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from controller.kube.objects import Obj, generation_of
from dpfd.api.conditions import Condition

READY: Final = "Ready"
IMAGE_PULL_SECRETS_RECONCILED: Final = "ImagePullSecretsReconciled"
SYSTEM_COMPONENTS_RECONCILED: Final = "SystemComponentsReconciled"
SYSTEM_COMPONENTS_READY: Final = "SystemComponentsReady"
OWN_CONDITIONS: Final = (READY, IMAGE_PULL_SECRETS_RECONCILED, SYSTEM_COMPONENTS_RECONCILED, SYSTEM_COMPONENTS_READY)

REASON_SUCCESS: Final = "Success"
REASON_PENDING: Final = "Pending"
REASON_ERROR: Final = "Error"
REASON_PAUSED: Final = "Paused"

PAUSED_MESSAGE: Final = "Reconciliation is paused (spec.overrides.paused): the controller changes nothing"


def cond(config: Obj, type_: str, ok: bool, reason: str = REASON_SUCCESS, message: str = "") -> Condition:
    return Condition(type=type_, status="True" if ok else "False", reason=reason, message=message,
                     observedGeneration=generation_of(config))  # fmt: skip


def summary(config: Obj, conditions: Iterable[Condition]) -> Condition:
    """Ready: True when every other condition is; otherwise the first one that is not, in DPF's order."""
    order = {t: i for i, t in enumerate(OWN_CONDITIONS)}
    others = sorted((c for c in conditions if c.type != READY), key=lambda c: order.get(c.type, len(order)))
    bad = next((c for c in others if c.status != "True"), None)
    if bad is None:
        return cond(config, READY, True)
    return cond(config, READY, False, bad.reason or REASON_PENDING, f"{bad.type}: {bad.message}".rstrip(": "))


def paused(config: Obj) -> Condition:
    return cond(config, READY, False, REASON_PAUSED, PAUSED_MESSAGE)


def not_the_only_one(config: Obj, count: int) -> Condition:
    return cond(config, READY, False, REASON_ERROR, f"exactly one DPFOperatorConfig necessary, found {count}")
