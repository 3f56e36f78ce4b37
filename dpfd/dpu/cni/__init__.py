"""The DPU dpfd's side of the SFC CNI plugin: veth pairs into pods, ports on the bridge, addresses from a pool."""
