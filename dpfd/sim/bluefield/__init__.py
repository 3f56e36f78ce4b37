"""The emulated BlueField: what a DPU shows the host (its DMS server, for now)."""
