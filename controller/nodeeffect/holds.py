"""Who holds which node effect on a Node, recorded in one Node annotation, and the Node changes that follow.

Several DPUs on one host share its effects: the cordon, each taint (by key) and each label (by key) is a *hold*
with a set of owners. The first owner makes the change (remembering whether it was already there), later owners
join, and the change is undone only when the last owner lets go, and only if it was ours. Everything here is
pure: it reads a Node object and returns the merge patch that converges it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from controller.kube.objects import Obj, annotations_of, labels_of, resource_version_of
from controller.nodeeffect.spec import CORDON, Want

ANNOTATION = "provisioning.dpu.nvidia.com/node-effect"


class CorruptHolds(ValueError):
    """The Node's node-effect annotation cannot be read; the message names the node and the problem."""


@dataclass
class Hold:
    owners: dict[str, str] = field(default_factory=dict)  # owner -> when it first asked (RFC 3339)
    ours: bool = False  # we made the change, so the last owner undoes it
    value: Any = None  # taint/<key>: the taint we added; label/<key>: the value we set
    previous: str | None = None  # label/<key>: the value before ours (None: there was none)

    def to_json(self) -> Obj:
        out: Obj = {"owners": dict(sorted(self.owners.items())), "ours": self.ours}
        if self.value is not None:
            out["value"] = self.value
        if self.previous is not None:
            out["previous"] = self.previous
        return out


Holds = dict[str, Hold]


def load_holds(node: Obj) -> Holds:
    raw = annotations_of(node).get(ANNOTATION)
    if not raw:
        return {}
    name = (node.get("metadata") or {}).get("name", "")
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        holds: Holds = {}
        for key, h in doc.items():
            owners = h["owners"]
            if not isinstance(owners, dict) or not all(isinstance(v, str) for v in owners.values()):
                raise ValueError(f"{key}: owners must map owner names to times")
            previous = h.get("previous")
            holds[str(key)] = Hold(
                dict(owners), bool(h["ours"]), h.get("value"), None if previous is None else str(previous)
            )
        return holds
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptHolds(
            f"Node {name}: annotation {ANNOTATION} is not a node-effect record ({e}): {raw[:200]!r}"
        ) from e


def dump_holds(holds: Holds) -> str | None:
    """The annotation's value; None removes it (no one holds anything)."""
    if not holds:
        return None
    return json.dumps({k: holds[k].to_json() for k in sorted(holds)}, separators=(",", ":"), sort_keys=False)


@dataclass
class NodeView:
    """The parts of a Node node effects change."""

    labels: dict[str, str]
    taints: list[Obj]
    unschedulable: bool

    @classmethod
    def of(cls, node: Obj) -> NodeView:
        spec = node.get("spec") or {}
        return cls(labels_of(node), [dict(t) for t in spec.get("taints") or []], bool(spec.get("unschedulable")))

    def taint_with_key(self, key: str) -> Obj | None:
        return next((t for t in self.taints if t.get("key") == key), None)


def _same_taint(a: Obj, b: Obj) -> bool:
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect") and a.get("value") == b.get("value")


def _new_taint(want: Want, now: str) -> Obj:
    taint = dict(want.value)
    if taint["effect"] == "NoExecute":
        taint["timeAdded"] = now  # what kubectl taint sets: NoExecute tolerations count from it
    return taint


def _make(view: NodeView, want: Want, now: str) -> Hold:
    """A new hold: make the change unless it is already there, and remember whether we made it."""
    if want.hold == CORDON:
        hold = Hold(ours=not view.unschedulable)
        view.unschedulable = True
        return hold
    if want.hold.startswith("taint/"):
        if view.taint_with_key(want.value["key"]) is not None:
            return Hold(ours=False)  # "add the taint if its key is absent": someone else's taint does the job
        taint = _new_taint(want, now)
        view.taints.append(taint)
        return Hold(ours=True, value=taint)
    key = want.hold.removeprefix("label/")
    current = view.labels.get(key)
    view.labels[key] = want.value
    return Hold(ours=current != want.value, value=want.value, previous=current)


def _keep(view: NodeView, hold: Hold, want: Want, now: str) -> None:
    """Level-triggered: put the change back if someone undid it while it is still wanted."""
    if want.hold == CORDON:
        if not view.unschedulable:
            view.unschedulable, hold.ours = True, True
    elif want.hold.startswith("taint/"):
        if view.taint_with_key(want.value["key"]) is None:
            taint = _new_taint(want, now)
            view.taints.append(taint)
            hold.ours, hold.value = True, taint
    else:
        key = want.hold.removeprefix("label/")
        if view.labels.get(key) != want.value:
            if not hold.ours:
                hold.previous = view.labels.get(key)
            view.labels[key] = want.value
            hold.ours, hold.value = True, want.value


def _undo(view: NodeView, key: str, hold: Hold) -> None:
    """The last owner let go: undo our change, if it is still as we made it."""
    if not hold.ours:
        return
    if key == CORDON:
        view.unschedulable = False
    elif key.startswith("taint/"):
        view.taints = [t for t in view.taints if not _same_taint(t, hold.value or {})]
    else:
        label = key.removeprefix("label/")
        if view.labels.get(label) == hold.value:
            if hold.previous is None:
                view.labels.pop(label, None)
            else:
                view.labels[label] = hold.previous


def converge(view: NodeView, holds: Holds, owner: str, wants: tuple[Want, ...], now: str) -> Holds:
    """Make `owner` hold exactly `wants`: join or make the holds it wants, let go of the others.
    Changes `view` in place and returns the new holds."""
    out = {k: Hold(dict(h.owners), h.ours, h.value, h.previous) for k, h in holds.items()}
    wanted = {w.hold: w for w in wants}
    for key in sorted(out):
        held = out[key]
        if owner in held.owners and key not in wanted:
            del held.owners[owner]
            if not held.owners:
                _undo(view, key, held)
                del out[key]
    for key, want in wanted.items():
        existing = out.get(key)
        if existing is None:
            hold = out[key] = _make(view, want, now)
        else:
            hold = existing
            _keep(view, hold, want, now)
        hold.owners.setdefault(owner, now)
    return out


def node_patch(node: Obj, view: NodeView, holds: Holds) -> Obj | None:
    """The merge patch taking `node` to `view` and `holds`, guarded by its resourceVersion; None if nothing changes."""
    before = NodeView.of(node)
    meta: Obj = {}
    spec: Obj = {}
    if view.labels != before.labels:
        labels: dict[str, str | None] = {k: None for k in before.labels if k not in view.labels}
        labels.update({k: v for k, v in view.labels.items() if before.labels.get(k) != v})
        meta["labels"] = labels
    record = dump_holds(holds)
    if record != annotations_of(node).get(ANNOTATION):
        meta["annotations"] = {ANNOTATION: record}
    if view.taints != before.taints:
        spec["taints"] = view.taints or None
    if view.unschedulable != before.unschedulable:
        spec["unschedulable"] = view.unschedulable or None
    if not meta and not spec:
        return None
    meta["resourceVersion"] = resource_version_of(node)
    patch: Obj = {"metadata": meta}
    if spec:
        patch["spec"] = spec
    return patch
