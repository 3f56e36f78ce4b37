"""The host dpfd's DPU provisioning: DPF's phase machine, run per DPU on the host it is attached to.

`phases` names DPF's phases and conditions, `progress` is what survives a restart, `deps` the machine's view of
the world (BFB cache, DMS, host power, host network, discovery), `machine` the level-triggered reconciler.
"""
