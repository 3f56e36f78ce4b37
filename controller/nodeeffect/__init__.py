"""Node effects (noEffect, taint, customLabel, drain) applied to a DPU's host Node, and reverted."""

from controller.nodeeffect.applier import (
    EffectPhase,
    EffectState,
    NodeEffectApplier,
    NodeEffectError,
    NodeEffectOptions,
)
from controller.nodeeffect.holds import ANNOTATION
from controller.nodeeffect.spec import InvalidNodeEffect, parse_effect

__all__ = [
    "ANNOTATION",
    "EffectPhase",
    "EffectState",
    "InvalidNodeEffect",
    "NodeEffectApplier",
    "NodeEffectError",
    "NodeEffectOptions",
    "parse_effect",
]
