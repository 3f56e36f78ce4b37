"""The SFC CNI plugin executable (`dpf-sfc-cni`) and its wire protocol to the DPU dpfd."""
