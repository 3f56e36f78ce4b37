"""One exception hierarchy for talking to DMS; every message names the target, the step and the reason."""

from __future__ import annotations


class DmsError(Exception):
    """A DMS step failed. `target` is HOST:PORT (or the DPU name given), `step` what was being done."""

    def __init__(self, target: str, step: str, reason: str) -> None:
        super().__init__(f"DMS {target}: {step}: {reason}")
        self.target = target
        self.step = step
        self.reason = reason


class DmsUnreachable(DmsError):
    """No connection to DMS (refused, reset, no route, or the DPU is rebooting)."""


class DmsTlsError(DmsError):
    """The TLS handshake or authentication failed: wrong CA, wrong or untrusted client certificate, bad name."""


class DmsTimeout(DmsError):
    """A step did not finish within its deadline."""


class DmsInstallError(DmsError):
    """DMS refused or failed an OS.Install; `error_type` is the gNOI InstallError.Type name (e.g. INTEGRITY_FAIL)."""

    def __init__(self, target: str, step: str, error_type: str, detail: str) -> None:
        super().__init__(target, step, f"InstallError {error_type}: {detail or '(no detail)'}")
        self.error_type = error_type
        self.detail = detail


class DmsActivateError(DmsError):
    """DMS refused OS.Activate; `error_type` is the gNOI ActivateError.Type name (e.g. NON_EXISTENT_VERSION)."""

    def __init__(self, target: str, step: str, error_type: str, detail: str) -> None:
        super().__init__(target, step, f"ActivateError {error_type}: {detail or '(no detail)'}")
        self.error_type = error_type
        self.detail = detail


class DmsRebootFailed(DmsError):
    """The reboot ended, but System.RebootStatus reports a failure (or an unknown status)."""


class DmsProtocolError(DmsError):
    """DMS answered outside the gNOI sequence (unexpected message, stream ended early, wrong version)."""
