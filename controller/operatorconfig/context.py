"""The DPFOperatorConfig's MTUs carried into the DPU intents' context, where the hosts read them.

DPF hands `highSpeedMTU` to each DPU's hostnetwork pod as `vf_mtu` (the MTU of the host VF in br-dpu) and uses
`controlPlaneMTU` for the DPU's control-plane link; here the host's dpfd reads the intent context: `mtu` for the VF
(dpfd/host/provisioning/machine.py) and `controlPlaneMTU` for the bf.cfg it renders.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.kube.objects import Obj
from controller.operatorconfig.plan import Plan
from controller.reconcilers.dpu_context import ContextHooks

HIGH_SPEED_MTU_KEY = "mtu"
CONTROL_PLANE_MTU_KEY = "controlPlaneMTU"


def with_mtus(context: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """`context` plus the plan's MTUs (unchanged without a DPFOperatorConfig: the hosts keep their defaults)."""
    if plan.high_speed_mtu is None or plan.control_plane_mtu is None:
        return context
    return {**context, HIGH_SPEED_MTU_KEY: plan.high_speed_mtu, CONTROL_PLANE_MTU_KEY: plan.control_plane_mtu}


class MtuContext:
    """A ContextHooks that adds the current plan's MTUs to what `inner` resolves."""

    def __init__(self, inner: ContextHooks, plan: Callable[[], Plan]) -> None:
        self.inner = inner
        self.plan = plan

    def context_of(self, dpu: Obj) -> dict[str, Any]:
        return with_mtus(self.inner.context_of(dpu), self.plan())

    async def assign_cluster(self, dpu: Obj) -> None:
        await self.inner.assign_cluster(dpu)

    async def release(self, dpu: Obj) -> None:
        await self.inner.release(dpu)
