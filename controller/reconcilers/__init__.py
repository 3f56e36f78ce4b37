"""Level-triggered reconcilers, one module per family of DPF kinds."""
