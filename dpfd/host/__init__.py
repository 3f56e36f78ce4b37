"""The host role of dpfd: DPU ownership now; discovery, provisioning and host networking later."""
