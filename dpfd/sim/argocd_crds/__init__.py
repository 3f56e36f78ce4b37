"""ArgoCD's Application and AppProject CRDs (argoproj.io/v1alpha1), minimal stand-ins that keep every field: what
dpf-sim registers in the emulated host API so the DPUService controller can write what DPF writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


def argocd_crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted(HERE.glob("*.argoproj.io.yaml"))]
