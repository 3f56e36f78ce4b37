"""Optional persistence: the whole object set as one JSON file in the state directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dpfd.sim.kubeapi.resources import CRD_GROUP, Registry, crd_to_type
from dpfd.sim.kubeapi.store import Store

SNAPSHOT_FILE = "kubeapi.json"


def save(state_dir: Path, store: Store) -> None:
    """Write atomically (temp file, then rename) so a crash never leaves half a snapshot."""
    state_dir.mkdir(parents=True, exist_ok=True)
    entries = [{"group": g, "plural": p, "object": obj} for (g, p), obj in store.all_objects()]
    tmp = state_dir / (SNAPSHOT_FILE + ".tmp")
    tmp.write_text(json.dumps({"resourceVersion": store.rv, "objects": entries}, separators=(",", ":")))
    os.replace(tmp, state_dir / SNAPSHOT_FILE)


def load(state_dir: Path, store: Store, registry: Registry) -> bool:
    """Restore a snapshot into an empty store; False when there is none."""
    path = state_dir / SNAPSHOT_FILE
    if not path.exists():
        return False
    doc: dict[str, Any] = json.loads(path.read_text())
    entries = doc.get("objects", [])
    for e in entries:
        if (e["group"], e["plural"]) == (CRD_GROUP, "customresourcedefinitions"):
            registry.add(crd_to_type(e["object"]))
    for e in entries:
        if registry.by_key((e["group"], e["plural"])) is not None:
            store.restore((e["group"], e["plural"]), e["object"])
    store.rv = max(store.rv, int(doc.get("resourceVersion", 0)))
    store.compacted_rv = store.rv  # no events survive a restart: older resourceVersions get 410
    return True
