"""ServiceChain flows on br-sfc: DPF's MAC-learning switches as OpenFlow rules, applied in ovs-ofctl bundles."""
