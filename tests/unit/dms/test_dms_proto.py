"""The gNOI/gNMI subset: committed generated code up to date, and OpenConfig's names and field numbers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from google.protobuf.descriptor import Descriptor

from dpfd.proto.gnmi import gnmi_pb2
from dpfd.proto.gnoi.os import os_pb2
from dpfd.proto.gnoi.system import system_pb2
from dpfd.proto.gnoi.types import types_pb2

REPO = Path(__file__).resolve().parents[3]
GENERATED = REPO / "dpfd" / "proto"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_committed_generated_code_matches_the_protos(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    subprocess.run([str(REPO / "scripts" / "gen-proto.sh"), str(out)], check=True, capture_output=True, timeout=120)
    fresh, committed = _tree(out), _tree(GENERATED)
    assert sorted(fresh) == sorted(committed), "regenerate with: scripts/gen-proto.sh"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"dpfd/proto is stale ({', '.join(stale)}); regenerate with: scripts/gen-proto.sh"


def test_generated_imports_are_package_absolute() -> None:
    sources = [p for p in GENERATED.rglob("*.py*") if p.suffix in (".py", ".pyi")]  # not __pycache__'s .pyc
    assert sources
    for path in sources:
        for line in path.read_text().splitlines():
            assert not line.startswith(("from gnoi", "from gnmi", "import gnoi", "import gnmi")), f"{path}: {line}"


def _fields(msg: Descriptor) -> dict[str, int]:
    return {f.name: f.number for f in msg.fields}


def test_os_service_matches_openconfig() -> None:
    svc = os_pb2.DESCRIPTOR.services_by_name["OS"]
    assert svc.full_name == "gnoi.os.OS"
    methods = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in svc.methods}
    assert methods == {
        "Install": ("gnoi.os.InstallRequest", "gnoi.os.InstallResponse"),
        "Activate": ("gnoi.os.ActivateRequest", "gnoi.os.ActivateResponse"),
        "Verify": ("gnoi.os.VerifyRequest", "gnoi.os.VerifyResponse"),
    }
    install = svc.methods_by_name["Install"]
    assert install.client_streaming and install.server_streaming
    assert _fields(os_pb2.InstallRequest.DESCRIPTOR) == {
        "transfer_request": 1,
        "transfer_content": 2,
        "transfer_end": 3,
    }
    assert _fields(os_pb2.TransferRequest.DESCRIPTOR) == {"version": 1, "standby_supervisor": 2, "package_size": 3}
    assert _fields(os_pb2.InstallResponse.DESCRIPTOR) == {
        "transfer_ready": 1, "transfer_progress": 2, "sync_progress": 3, "validated": 4, "install_error": 5,
    }  # fmt: skip
    assert _fields(os_pb2.TransferProgress.DESCRIPTOR) == {"bytes_received": 1}
    assert _fields(os_pb2.Validated.DESCRIPTOR) == {"version": 1, "description": 2}
    assert _fields(os_pb2.InstallError.DESCRIPTOR) == {"type": 1, "detail": 2}
    assert dict(os_pb2.InstallError.Type.items()) == {
        "UNSPECIFIED": 0, "INCOMPATIBLE": 1, "TOO_LARGE": 2, "PARSE_FAIL": 3, "INTEGRITY_FAIL": 4,
        "INSTALL_RUN_PACKAGE": 5, "INSTALL_IN_PROGRESS": 6, "UNEXPECTED_SWITCHOVER": 7, "SYNC_FAIL": 8,
        "NOT_SUPPORTED_ON_BACKUP": 9,
    }  # fmt: skip
    assert _fields(os_pb2.ActivateRequest.DESCRIPTOR) == {"version": 1, "standby_supervisor": 2, "no_reboot": 3}
    assert _fields(os_pb2.ActivateResponse.DESCRIPTOR) == {"activate_ok": 1, "activate_error": 2}
    assert dict(os_pb2.ActivateError.Type.items()) == {
        "UNSPECIFIED": 0, "NON_EXISTENT_VERSION": 1, "NOT_SUPPORTED_ON_BACKUP": 2,
    }  # fmt: skip
    assert _fields(os_pb2.VerifyResponse.DESCRIPTOR) == {
        "version": 1, "activation_fail_message": 2, "verify_standby": 3, "individual_supervisor_install": 4,
        "image_name": 5,
    }  # fmt: skip


def test_system_reboot_status_matches_openconfig() -> None:
    svc = system_pb2.DESCRIPTOR.services_by_name["System"]
    assert svc.full_name == "gnoi.system.System"
    assert {"Reboot", "RebootStatus"} <= set(svc.methods_by_name)
    assert _fields(system_pb2.RebootStatusRequest.DESCRIPTOR) == {"subcomponents": 1}
    assert system_pb2.RebootStatusRequest.DESCRIPTOR.fields_by_name["subcomponents"].message_type.full_name == (
        "gnoi.types.Path"
    )
    assert _fields(system_pb2.RebootStatusResponse.DESCRIPTOR) == {
        "active": 1, "wait": 2, "when": 3, "reason": 4, "count": 5, "method": 6, "status": 7,
    }  # fmt: skip
    assert dict(system_pb2.RebootStatus.Status.items()) == {
        "STATUS_UNKNOWN": 0, "STATUS_SUCCESS": 1, "STATUS_RETRIABLE_FAILURE": 2, "STATUS_FAILURE": 3,
    }  # fmt: skip
    assert _fields(system_pb2.RebootRequest.DESCRIPTOR) == {
        "method": 1, "delay": 2, "message": 3, "subcomponents": 4, "force": 5,
    }  # fmt: skip
    assert dict(system_pb2.RebootMethod.items()) == {
        "UNKNOWN": 0, "COLD": 1, "POWERDOWN": 2, "HALT": 3, "WARM": 4, "NSF": 5, "POWERUP": 7,
    }  # fmt: skip
    assert _fields(types_pb2.Path.DESCRIPTOR) == {"origin": 2, "elem": 3}
    assert _fields(types_pb2.PathElem.DESCRIPTOR) == {"name": 1, "key": 2}
    assert _fields(types_pb2.HashType.DESCRIPTOR) == {"method": 1, "hash": 2}


def test_gnmi_set_matches_openconfig() -> None:
    svc = gnmi_pb2.DESCRIPTOR.services_by_name["gNMI"]
    assert svc.full_name == "gnmi.gNMI" and set(svc.methods_by_name) == {"Capabilities", "Set"}
    assert _fields(gnmi_pb2.SetRequest.DESCRIPTOR) == {"prefix": 1, "delete": 2, "replace": 3, "update": 4}
    assert _fields(gnmi_pb2.SetResponse.DESCRIPTOR) == {"prefix": 1, "response": 2, "message": 3, "timestamp": 4}
    assert _fields(gnmi_pb2.Update.DESCRIPTOR) == {"path": 1, "value": 2, "val": 3, "duplicates": 4}
    assert _fields(gnmi_pb2.Path.DESCRIPTOR) == {"element": 1, "origin": 2, "elem": 3, "target": 4}
    assert _fields(gnmi_pb2.UpdateResult.DESCRIPTOR) == {"timestamp": 1, "path": 2, "message": 3, "op": 4}
    tv = _fields(gnmi_pb2.TypedValue.DESCRIPTOR)
    assert (tv["string_val"], tv["json_val"], tv["json_ietf_val"], tv["ascii_val"], tv["proto_bytes"]) == (
        1,
        10,
        11,
        12,
        13,
    )
    assert _fields(gnmi_pb2.CapabilityResponse.DESCRIPTOR) == {
        "supported_models": 1, "supported_encodings": 2, "gNMI_version": 3,
    }  # fmt: skip


def test_dpf_mode_request_wire_bytes() -> None:
    """The SetRequest DPF sends, byte for byte (update 4 -> path 1 -> elem 3 -> name 1; val 3 -> string_val 1)."""
    from dpfd.host.dms.client import MODE_PATH

    path = gnmi_pb2.Path(elem=[gnmi_pb2.PathElem(name=n) for n in MODE_PATH])
    req = gnmi_pb2.SetRequest(update=[gnmi_pb2.Update(path=path, val=gnmi_pb2.TypedValue(string_val="DPU"))])
    elems = b"".join(b"\x1a" + bytes([len(n) + 2]) + b"\x0a" + bytes([len(n)]) + n.encode() for n in MODE_PATH)
    update = b"\x0a" + bytes([len(elems)]) + elems + b"\x1a\x05\x0a\x03DPU"
    assert req.SerializeToString() == b"\x22" + bytes([len(update)]) + update
