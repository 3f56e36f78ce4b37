"""DPF v24.10's DPU phases, condition types and reasons (`internal/provisioning/controllers/dpu/state/`)."""

from __future__ import annotations

INITIALIZING = "Initializing"
NODE_EFFECT = "Node Effect"
PENDING = "Pending"
DMS_DEPLOYMENT = "DMS Deployment"
OS_INSTALLING = "OS Installing"
REBOOTING = "Rebooting"
HOST_NETWORK = "Host Network Configuration"
CLUSTER_CONFIG = "DPU Cluster Config"
READY = "Ready"
ERROR = "Error"
DELETING = "Deleting"

# The happy path, in order: a phase's work is done once the machine is past it.
HAPPY_PATH = (INITIALIZING, NODE_EFFECT, PENDING, DMS_DEPLOYMENT, OS_INSTALLING, REBOOTING, HOST_NETWORK,
              CLUSTER_CONFIG, READY)  # fmt: skip

# Conditions, one per phase's outcome, as DPF names them.
COND_INITIALIZED = "Initialized"
COND_NODE_EFFECT = "NodeEffectReady"
COND_BFB_READY = "BFBReady"
COND_DMS_RUNNING = "DMSRunning"
COND_OS_INSTALLED = "OSInstalled"
COND_REBOOTED = "Rebooted"
COND_HOST_NETWORK = "HostNetworkReady"
COND_READY = "Ready"

CONDITION_OF_PHASE = {
    INITIALIZING: COND_INITIALIZED,
    NODE_EFFECT: COND_NODE_EFFECT,
    PENDING: COND_BFB_READY,
    DMS_DEPLOYMENT: COND_DMS_RUNNING,
    OS_INSTALLING: COND_OS_INSTALLED,
    REBOOTING: COND_REBOOTED,
    HOST_NETWORK: COND_HOST_NETWORK,
    CLUSTER_CONFIG: COND_READY,
}

# Reasons (DPF's where it has one).
REASON_OOB_BRIDGE = "DPUOOBBridgeNotConfigured"
REASON_DPU_NOT_FOUND = "DPUNotFound"
REASON_INSTALL_FAILED = "InstallationFailed"
REASON_WAITING = "Waiting"
REASON_IN_PROGRESS = "InProgress"
REASON_DONE = "Succeeded"
REASON_RETRYING = "RetryScheduled"
REASON_DMS_UNKNOWN = "DMSTargetUnknown"  # dpfd's configuration names no DMS for this DPU
REASON_DRAINED = "HostDrained"  # dpfctl drain: no new provisioning work on this host

# Annotations DPF reads to decide how the host is rebooted after a flash.
ANNOTATION_POWER_CYCLE_REQUIRED = "provisioning.dpu.nvidia.com/host-power-cycle-required"
ANNOTATION_POWERCYCLE_COMMAND = "provisioning.dpu.nvidia.com/powercycle-command"  # on the Node: cycle | reset | skip
ANNOTATION_REBOOT_COMMAND = "provisioning.dpu.nvidia.com/reboot-command"  # on the Node: reset | skip
