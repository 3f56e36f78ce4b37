"""DMS (NVIDIA's gNOI/gNMI server on each DPU): client, install sequence, certificates, errors."""

from dpfd.host.dms.client import DEFAULT_CHUNK, MAX_BF_CFG, DmsClient, InstallResult
from dpfd.host.dms.errors import (
    DmsActivateError,
    DmsError,
    DmsInstallError,
    DmsProtocolError,
    DmsRebootFailed,
    DmsTimeout,
    DmsTlsError,
    DmsUnreachable,
)
from dpfd.host.dms.tls import TlsFiles

__all__ = [
    "DEFAULT_CHUNK",
    "MAX_BF_CFG",
    "DmsActivateError",
    "DmsClient",
    "DmsError",
    "DmsInstallError",
    "DmsProtocolError",
    "DmsRebootFailed",
    "DmsTimeout",
    "DmsTlsError",
    "DmsUnreachable",
    "InstallResult",
    "TlsFiles",
]
