"""The resources and DPF constants of the credential family (api/dpuservice/v1alpha1/
dpuservice_credential_request_types.go)."""

from __future__ import annotations

from typing import Final

from controller.kube.resources import ResourceType

SVC_GROUP: Final = "svc.dpu.nvidia.com"
CREDENTIAL_REQUESTS = ResourceType(
    SVC_GROUP, "v1alpha1", "dpuservicecredentialrequests", "DPUServiceCredentialRequest", namespaced=True
)

FINALIZER: Final = "dpu.nvidia.com/dpuservicecredentialrequest"
TYPE_KUBECONFIG: Final = "kubeconfig"
TYPE_TOKEN_FILE: Final = "tokenFile"
DEFAULT_NAMESPACE: Final = "default"  # NamespacedName.GetNamespace() when none is given

COND_READY: Final = "Ready"
COND_SERVICE_ACCOUNT: Final = "ServiceAccountReconciled"
COND_SECRET: Final = "SecretReconciled"

# The Secret's keys, per type
KEY_KUBECONFIG: Final = "kubeconfig"
KEY_TOKEN_FILE: Final = "TOKEN_FILE"
KEY_HOST: Final = "KUBERNETES_SERVICE_HOST"
KEY_PORT: Final = "KUBERNETES_SERVICE_PORT"
KEY_CA_DATA: Final = "KUBERNETES_CA_DATA"
KEYS_OF_TYPE: Final = {
    TYPE_KUBECONFIG: (KEY_KUBECONFIG,),
    TYPE_TOKEN_FILE: (KEY_HOST, KEY_PORT, KEY_CA_DATA, KEY_TOKEN_FILE),
}
