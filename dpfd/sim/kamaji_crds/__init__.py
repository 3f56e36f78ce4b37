"""Kamaji's TenantControlPlane CRD (kamaji.clastix.io/v1alpha1), a minimal stand-in that keeps every field: what
dpf-sim registers in the emulated host API so DPF's kamaji cluster manager can ask for DPU-cluster control planes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent

NAMES = ("tenantcontrolplanes.kamaji.clastix.io",)


def kamaji_crds() -> list[dict[str, Any]]:
    """The CRD; a missing file (an install that left the package data out) fails here, not later in Kamaji's place."""
    return [yaml.safe_load((HERE / f"{name}.yaml").read_text()) for name in NAMES]
