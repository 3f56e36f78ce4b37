"""DPUServiceCredentialRequest: a ServiceAccount and a token for it, in the host or a DPU cluster, delivered as a
kubeconfig or token-file Secret in the host cluster and rotated before it expires (DPF v24.10's
dpuservice_credential_request_controller.go)."""

from controller.credentials.access import ClusterAccess, host_access_from_kubeconfig
from controller.credentials.work import CredentialWork

__all__ = ["ClusterAccess", "CredentialWork", "host_access_from_kubeconfig"]
