"""A DPU's nodeEffect (`{"taint": {...}}`, `{"customLabel": {...}}`, `{"drain": {...}}`, `{"noEffect": true}`),
checked, and turned into the holds it needs on the host Node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("noEffect", "taint", "customLabel", "drain")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
CORDON = "cordon"


class InvalidNodeEffect(ValueError):
    """A nodeEffect that cannot be applied; the message names the field and why."""


@dataclass(frozen=True)
class Want:
    """One thing an effect needs on the Node: the cordon, a taint (by key), or a label (by key)."""

    hold: str  # "cordon", "taint/<key>" or "label/<key>": where the Node annotation records who holds it
    value: Any = None  # the taint (dict) or the label's value


@dataclass(frozen=True)
class NodeEffect:
    kind: str
    wants: tuple[Want, ...]

    @property
    def drains(self) -> bool:
        return self.kind == "drain"


def taint_hold(key: str) -> str:
    return f"taint/{key}"


def label_hold(key: str) -> str:
    return f"label/{key}"


def _taint(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidNodeEffect(f"nodeEffect.taint: must be an object with key and effect, got {raw!r}")
    key, effect, value = raw.get("key"), raw.get("effect"), raw.get("value")
    if not isinstance(key, str) or not key:
        raise InvalidNodeEffect(f"nodeEffect.taint.key: must be a non-empty string, got {key!r}")
    if effect not in TAINT_EFFECTS:
        raise InvalidNodeEffect(f"nodeEffect.taint.effect: must be one of {', '.join(TAINT_EFFECTS)}, got {effect!r}")
    if value is not None and not isinstance(value, str):
        raise InvalidNodeEffect(f"nodeEffect.taint.value: must be a string, got {value!r}")
    taint = {"key": key, "effect": str(effect)}
    if value:
        taint["value"] = value
    return taint


def _labels(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise InvalidNodeEffect(f"nodeEffect.customLabel: must be a non-empty map of labels, got {raw!r}")
    for k, v in raw.items():
        if not isinstance(k, str) or not k or not isinstance(v, str):
            raise InvalidNodeEffect(f"nodeEffect.customLabel: {k!r}: keys and values must be strings, got {v!r}")
    return dict(raw)


def parse_effect(effect: Any) -> NodeEffect:
    """The effect and the holds it needs; raises InvalidNodeEffect unless exactly one kind is set."""
    if not isinstance(effect, dict):
        raise InvalidNodeEffect(f"nodeEffect: must be an object, got {effect!r}")
    unknown = sorted(k for k in effect if k not in KINDS)
    if unknown:
        raise InvalidNodeEffect(
            f"nodeEffect: unknown field(s) {', '.join(unknown)}; expected one of {', '.join(KINDS)}"
        )
    chosen = [k for k in KINDS if effect.get(k) not in (None, False)]
    if len(chosen) != 1:
        got = ", ".join(chosen) if chosen else "none"
        raise InvalidNodeEffect(f"nodeEffect: must set exactly one of {', '.join(KINDS)}; got {got}")
    kind = chosen[0]
    if kind == "taint":
        taint = _taint(effect["taint"])
        return NodeEffect(kind, (Want(taint_hold(taint["key"]), taint),))
    if kind == "customLabel":
        labels = _labels(effect["customLabel"])
        return NodeEffect(kind, tuple(Want(label_hold(k), v) for k, v in sorted(labels.items())))
    if kind == "drain":
        if not isinstance(effect["drain"], dict):
            raise InvalidNodeEffect(f"nodeEffect.drain: must be an object, got {effect['drain']!r}")
        return NodeEffect(kind, (Want(CORDON),))
    if effect["noEffect"] is not True:
        raise InvalidNodeEffect(f"nodeEffect.noEffect: must be true, got {effect['noEffect']!r}")
    return NodeEffect(kind, ())
