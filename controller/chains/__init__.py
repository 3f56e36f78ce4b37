"""Service function chaining fan-out: DPUServiceInterface / DPUServiceChain → per-DPU ServiceInterface /
ServiceChain intents for the DPUs' dpfds, and the sets' status from their reports."""
