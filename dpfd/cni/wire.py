"""The SFC CNI plugin's wire protocol to the DPU dpfd, and the CNI spec's constants both sides use.

Kept to the standard library (json only): the `dpf-sfc-cni` executable imports it for every pod.

Protocol (one request per connection, over a unix stream socket, default `/run/dpfd/sfc-cni.sock`):

- The plugin connects, writes ONE JSON object terminated by a newline, then shuts its write side down:

      {"v": 1, "command": "ADD" | "DEL" | "CHECK" | "STATUS" | "GC",
       "containerId": str, "netns": str, "ifname": str,
       "args": {"K8S_POD_NAMESPACE": "...", ...},   # CNI_ARGS split on ';' and '='
       "path": str,                                  # CNI_PATH
       "config": {...}}                              # the network configuration from stdin, as given

  Empty strings stand for variables the command does not need (the plugin checked the ones it does).
- dpfd answers with ONE JSON object terminated by a newline and closes the connection:

      {"result": {...}}                              # success: the CNI result (ADD, CHECK of 1.0.0: {} ...)
      {"error": {"code": int, "msg": str, "details": str}}

  `result` is printed by the plugin as the CNI result (it adds `cniVersion`); `error` becomes the CNI error
  object with that code. DEL, CHECK, GC and STATUS answer `{"result": {}}` on success (no output for them).
- A request line is at most MAX_MESSAGE bytes; dpfd answers a larger or malformed one with code ERR_DECODE.
"""

from __future__ import annotations

import json
from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_SOCKET = "/run/dpfd/sfc-cni.sock"
MAX_MESSAGE = 1 << 20

# The CNI versions this plugin speaks. STATUS and GC exist from 1.1.0 on.
SUPPORTED_VERSIONS = ("1.0.0", "1.1.0")
VERSIONS_WITH_STATUS_GC = ("1.1.0",)

# Error codes (CNI spec, "Error"): 1-99 are the spec's, 100+ the plugin's.
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_PLUGIN_NOT_AVAILABLE = 50  # STATUS: the plugin cannot serve ADD now
ERR_LIMITED_CONNECTIVITY = 51  # STATUS: ... e.g. the pool has no free address
ERR_INTERNAL = 100  # dpfd failed while carrying the request out
ERR_CHECK_FAILED = 101  # CHECK found the attachment not as ADD left it


def encode(message: dict[str, Any]) -> bytes:
    """One message on the wire: compact JSON and a newline."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """The message in `line`; ValueError if it is not one JSON object."""
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def error(code: int, msg: str, details: str = "") -> dict[str, Any]:
    """An error answer."""
    return {"error": {"code": code, "msg": msg, "details": details}}
