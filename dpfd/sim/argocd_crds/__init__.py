"""ArgoCD's Application and AppProject CRDs (argoproj.io/v1alpha1), minimal stand-ins that keep every field: what
dpf-sim registers in the emulated host API so the DPUService controller can write what DPF writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


NAMES = ("applications.argoproj.io", "appprojects.argoproj.io")


def argocd_crds() -> list[dict[str, Any]]:
    """Both CRDs; a missing file (an install that left the package data out) fails here, not later in ArgoCD's
    place."""
    return [yaml.safe_load((HERE / f"{name}.yaml").read_text()) for name in NAMES]
