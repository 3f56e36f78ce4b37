"""The DPU role of dpfd: what the daemon on a BlueField's Arm cores does (first: join the DPU cluster)."""
