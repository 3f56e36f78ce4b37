"""`dpf-sfc-cni`: DPF's SFC CNI plugin (CNI spec 1.0.0 and 1.1.0) as a thin client of the DPU's dpfd.

The container runtime runs it once per attachment with CNI_* variables in the environment and the network
configuration on stdin. VERSION is answered here; ADD, DEL, CHECK, STATUS and GC are checked here (variables,
configuration, version) and carried out by the DPU dpfd, reached over the unix socket named by the
configuration's `socket` key (default /run/dpfd/sfc-cni.sock; protocol in dpfd.cni.wire). The result or the
error object goes to stdout, a one-line reason for errors also to stderr; the exit code is 0 on success, 1 on
error. Imports stay within the standard library: this starts for every pod.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO, TextIO

from dpfd.cni import wire

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
DEFAULT_TIMEOUT = 120.0  # seconds for dpfd's answer; ADD waits for netlink and the bridge
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_BAD_IFNAME_CHARS = re.compile(r"[/:\s]")

# Which variables each command needs (CNI spec, "Parameters").
_REQUIRED_ENV: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "STATUS": (),
    "GC": (),
}


class CniError(Exception):
    """A CNI error result: `code` per the spec, `msg` short, `details` longer."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


def parse_cni_args(value: str) -> dict[str, str]:
    """CNI_ARGS ("K1=V1;K2=V2") as a dict; CniError(4) for a pair without '=' or an empty key."""
    args: dict[str, str] = {}
    for pair in value.split(";"):
        if not pair:
            continue
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise CniError(wire.ERR_INVALID_ENV, f"CNI_ARGS: {pair!r} is not KEY=VALUE")
        args[key] = val
    return args


def check_env(command: str, env: Mapping[str, str]) -> None:
    """CniError(4) naming every variable `command` needs that is missing or malformed."""
    missing = [name for name in _REQUIRED_ENV[command] if not env.get(name)]
    if missing:
        raise CniError(wire.ERR_INVALID_ENV, f"{command} needs {', '.join(missing)} in the environment")
    cid = env.get("CNI_CONTAINERID", "")
    if cid and not _CONTAINER_ID.match(cid):
        raise CniError(wire.ERR_INVALID_ENV, f"CNI_CONTAINERID {cid!r} is not alphanumeric with _ . -")
    ifname = env.get("CNI_IFNAME", "")
    if ifname and (len(ifname) > 15 or ifname in (".", "..") or _BAD_IFNAME_CHARS.search(ifname)):
        raise CniError(
            wire.ERR_INVALID_ENV,
            f"CNI_IFNAME {ifname!r} is not a valid interface name (at most 15 characters, no '/', ':' or spaces)",
        )


def parse_config(data: bytes) -> dict[str, Any]:
    """The network configuration from stdin, with cniVersion, name and type checked."""
    try:
        config = json.loads(data)
    except ValueError as e:
        raise CniError(wire.ERR_DECODE, "network configuration on stdin is not JSON", str(e)) from e
    if not isinstance(config, dict):
        raise CniError(
            wire.ERR_DECODE, f"network configuration on stdin is a JSON {type(config).__name__}, not an object"
        )
    version = config.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(wire.ERR_INVALID_CONFIG, "network configuration has no cniVersion")
    if version not in wire.SUPPORTED_VERSIONS:
        raise CniError(
            wire.ERR_INCOMPATIBLE_VERSION,
            f"cniVersion {version} is not supported",
            f"supported: {', '.join(wire.SUPPORTED_VERSIONS)}",
        )
    for key in ("name", "type"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise CniError(wire.ERR_INVALID_CONFIG, f"network configuration has no {key}")
    sock = config.get("socket", wire.DEFAULT_SOCKET)
    if not isinstance(sock, str) or not sock:
        raise CniError(wire.ERR_INVALID_CONFIG, f"network configuration: socket {sock!r} is not a path")
    return config


def version_info(data: bytes) -> dict[str, Any]:
    """VERSION's answer: the cniVersion asked for (1.0.0 when none is) and the versions supported."""
    asked = "1.0.0"
    if data.strip():
        try:
            value = json.loads(data)
        except ValueError as e:
            raise CniError(wire.ERR_DECODE, "VERSION: stdin is not JSON", str(e)) from e
        if isinstance(value, dict) and isinstance(value.get("cniVersion"), str) and value["cniVersion"]:
            asked = value["cniVersion"]
    return {"cniVersion": asked, "supportedVersions": list(wire.SUPPORTED_VERSIONS)}


def call_dpfd(path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send `request` to dpfd at `path` and return its answer; CniError(11) when dpfd is not there."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(wire.encode(request))
            s.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise CniError(wire.ERR_TRY_AGAIN_LATER, f"dpfd is not reachable at {path}", str(e)) from e
    except TimeoutError as e:
        raise CniError(wire.ERR_TRY_AGAIN_LATER, f"dpfd at {path} did not answer within {timeout:g}s") from e
    except OSError as e:
        raise CniError(wire.ERR_IO, f"talking to dpfd at {path} failed", str(e)) from e
    try:
        return wire.decode(b"".join(chunks))
    except ValueError as e:
        raise CniError(wire.ERR_DECODE, f"dpfd at {path} answered something that is not a message", str(e)) from e


def run(command: str, env: Mapping[str, str], data: bytes) -> dict[str, Any] | None:
    """Carry out `command`: the result to print, or None for commands without output."""
    if command == "VERSION":
        return version_info(data)
    config = parse_config(data)
    if command in ("STATUS", "GC") and config["cniVersion"] not in wire.VERSIONS_WITH_STATUS_GC:
        raise CniError(
            wire.ERR_INCOMPATIBLE_VERSION,
            f"{command} needs cniVersion 1.1.0, the configuration has {config['cniVersion']}",
        )
    check_env(command, env)
    request = {
        "v": wire.PROTOCOL_VERSION,
        "command": command,
        "containerId": env.get("CNI_CONTAINERID", ""),
        "netns": env.get("CNI_NETNS", ""),
        "ifname": env.get("CNI_IFNAME", ""),
        "args": parse_cni_args(env.get("CNI_ARGS", "")),
        "path": env.get("CNI_PATH", ""),
        "config": config,
    }
    timeout = config.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise CniError(
            wire.ERR_INVALID_CONFIG, f"network configuration: timeout {timeout!r} is not a positive number of seconds"
        )
    answer = call_dpfd(config.get("socket", wire.DEFAULT_SOCKET), request, float(timeout))
    err = answer.get("error")
    if isinstance(err, dict):
        raise CniError(
            int(err.get("code", wire.ERR_INTERNAL)), str(err.get("msg", "dpfd failed")), str(err.get("details", ""))
        )
    result = answer.get("result")
    if not isinstance(result, dict):
        raise CniError(wire.ERR_DECODE, "dpfd's answer has neither result nor error")
    if command != "ADD":
        return None
    return {"cniVersion": config["cniVersion"], **result}


def _config_version(data: bytes) -> str:
    """The cniVersion to put in an error object: the configuration's if it has a usable one."""
    try:
        value = json.loads(data)
    except ValueError:
        return "1.0.0"
    version = value.get("cniVersion") if isinstance(value, dict) else None
    return version if isinstance(version, str) and version in wire.SUPPORTED_VERSIONS else "1.0.0"


def main(env: Mapping[str, str] | None = None, stdin: BinaryIO | None = None, stdout: TextIO | None = None) -> int:
    """Run one CNI command; returns the exit code."""
    env = os.environ if env is None else env
    stdout = sys.stdout if stdout is None else stdout
    data = b""
    try:
        data = (stdin or sys.stdin.buffer).read()
        command = env.get("CNI_COMMAND", "")
        if command not in COMMANDS:
            raise CniError(
                wire.ERR_INVALID_ENV,
                f"CNI_COMMAND {command!r} is not one of {', '.join(COMMANDS)}" if command else "CNI_COMMAND is not set",
            )
        result = run(command, env, data)
    except CniError as e:
        out = {"cniVersion": _config_version(data), "code": e.code, "msg": e.msg}
        if e.details:
            out["details"] = e.details
        json.dump(out, stdout)
        stdout.write("\n")
        print(f"dpf-sfc-cni: {e.msg}" + (f": {e.details}" if e.details else ""), file=sys.stderr)
        return 1
    except OSError as e:
        json.dump(
            {"cniVersion": _config_version(data), "code": wire.ERR_IO, "msg": "I/O failure", "details": str(e)}, stdout
        )
        stdout.write("\n")
        return 1
    if result is not None:
        json.dump(result, stdout)
        stdout.write("\n")
    return 0


def entry() -> None:
    """Console script entry point."""
    sys.exit(main())
