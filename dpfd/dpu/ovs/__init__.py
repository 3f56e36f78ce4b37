"""The DPU's Open vSwitch: an ovsdbapp connection, ServiceInterface ports on br-sfc, and the vswitchd restart monitor."""
