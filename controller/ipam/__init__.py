"""DPUServiceIPAM: split into per-node ranges (plan.py) and written to etcd (reconciler.py)."""
