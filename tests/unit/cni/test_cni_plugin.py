"""The `dpf-sfc-cni` executable against the CNI spec, run for real (environment, stdin, stdout, exit code).

dpfd's side is a real CniServer on a real unix socket with a recording handler: these tests are about the
plugin's half of the contract (what it checks itself, what it forwards, how it reports).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from dpfd.cni import wire
from dpfd.dpu.cni.server import CniServer

PLUGIN = Path(sys.executable).parent / "dpf-sfc-cni"


def netconf(sock: Path, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "mybrsfc", "type": "dpf-sfc-cni", "socket": str(sock), **extra}


async def run_plugin(env: dict[str, str], stdin: bytes) -> tuple[int, Any, str]:
    """Exit code, parsed stdout (None if empty) and stderr of one plugin run."""
    assert PLUGIN.exists(), f"{PLUGIN} is missing: pip install -e . installs the dpf-sfc-cni console script"
    proc = await asyncio.create_subprocess_exec(
        str(PLUGIN), env={"PATH": "/usr/bin:/bin", **env},
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else None, err.decode()


ADD_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c0ffee01",
    "CNI_NETNS": "/var/run/netns/pod-x",
    "CNI_IFNAME": "eth1",
    "CNI_PATH": "/opt/cni/bin",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1",
}


class Recorder:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    async def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(message)
        return self.answer


async def test_version_echoes_the_asked_version_and_lists_supported() -> None:
    rc, out, _ = await run_plugin({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.1.0"}')
    assert rc == 0
    assert out == {"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]}
    rc, out, _ = await run_plugin({"CNI_COMMAND": "VERSION"}, b"")
    assert (rc, out["cniVersion"]) == (0, "1.0.0")


@pytest.mark.parametrize(
    ("stdin", "code"),
    [
        (b"{not json", wire.ERR_DECODE),
        (b"[1, 2]", wire.ERR_DECODE),
        (b"", wire.ERR_DECODE),
        (b'{"name": "n", "type": "t"}', wire.ERR_INVALID_CONFIG),
        (b'{"cniVersion": "1.0.0", "type": "t"}', wire.ERR_INVALID_CONFIG),
        (b'{"cniVersion": "0.2.0", "name": "n", "type": "t"}', wire.ERR_INCOMPATIBLE_VERSION),
        (b'{"cniVersion": "1.0.0", "name": "n", "type": "t", "socket": 5}', wire.ERR_INVALID_CONFIG),
        (b'{"cniVersion": "1.0.0", "name": "n", "type": "t", "timeout": -1}', wire.ERR_INVALID_CONFIG),
    ],
)
async def test_malformed_stdin_is_an_error_with_the_spec_code(stdin: bytes, code: int) -> None:
    rc, out, err = await run_plugin(ADD_ENV, stdin)
    assert rc == 1
    assert out["code"] == code, out
    assert out["msg"] and out["cniVersion"] in wire.SUPPORTED_VERSIONS
    assert "dpf-sfc-cni:" in err


@pytest.mark.parametrize(
    ("drop", "override", "named"),
    [
        ("CNI_COMMAND", {}, "CNI_COMMAND"),
        ("CNI_CONTAINERID", {}, "CNI_CONTAINERID"),
        ("CNI_NETNS", {}, "CNI_NETNS"),
        ("CNI_IFNAME", {}, "CNI_IFNAME"),
        (None, {"CNI_COMMAND": "FROB"}, "CNI_COMMAND"),
        (None, {"CNI_IFNAME": "a-very-long-interface"}, "CNI_IFNAME"),
        (None, {"CNI_IFNAME": "eth/1"}, "CNI_IFNAME"),
        (None, {"CNI_CONTAINERID": "-bad id"}, "CNI_CONTAINERID"),
        (None, {"CNI_ARGS": "K8S_POD_NAME"}, "CNI_ARGS"),
    ],
)
async def test_missing_or_invalid_variables_are_error_4_naming_them(
    tmp_path: Path, drop: str | None, override: dict[str, str], named: str
) -> None:
    env = {k: v for k, v in ADD_ENV.items() if k != drop} | override
    rc, out, _ = await run_plugin(env, json.dumps(netconf(tmp_path / "none.sock")).encode())
    assert rc == 1
    assert out["code"] == wire.ERR_INVALID_ENV
    assert named in out["msg"]


async def test_del_needs_no_netns_but_check_does(tmp_path: Path) -> None:
    rec = Recorder({"result": {}})
    server = await CniServer(rec, tmp_path / "s.sock").start()
    try:
        env = {k: v for k, v in ADD_ENV.items() if k != "CNI_NETNS"}
        rc, out, _ = await run_plugin({**env, "CNI_COMMAND": "DEL"}, json.dumps(netconf(server.path)).encode())
        assert (rc, out) == (0, None)
        rc, out, _ = await run_plugin({**env, "CNI_COMMAND": "CHECK"}, json.dumps(netconf(server.path)).encode())
        assert (rc, out["code"]) == (1, wire.ERR_INVALID_ENV)
        assert "CNI_NETNS" in out["msg"]
        assert [r["command"] for r in rec.requests] == ["DEL"]
    finally:
        await server.stop()


async def test_dpfd_not_running_is_try_again_later(tmp_path: Path) -> None:
    rc, out, _ = await run_plugin(ADD_ENV, json.dumps(netconf(tmp_path / "absent.sock")).encode())
    assert rc == 1
    assert out["code"] == wire.ERR_TRY_AGAIN_LATER
    assert str(tmp_path / "absent.sock") in out["msg"]


async def test_stale_socket_without_listener_is_try_again_later(tmp_path: Path) -> None:
    server = await CniServer(Recorder({"result": {}}), tmp_path / "s.sock").start()
    path = server.path
    server._server.close()  # type: ignore[union-attr]  # the socket file stays, nothing accepts
    await server._server.wait_closed()  # type: ignore[union-attr]
    path.touch(exist_ok=True)
    rc, out, _ = await run_plugin(ADD_ENV, json.dumps(netconf(path)).encode())
    assert (rc, out["code"]) == (1, wire.ERR_TRY_AGAIN_LATER)


async def test_add_forwards_the_request_and_prints_the_result_with_cni_version(tmp_path: Path) -> None:
    result = {
        "interfaces": [{"name": "eth1", "sandbox": "/var/run/netns/pod-x"}],
        "ips": [{"address": "198.51.100.7/24", "interface": 0}],
    }
    rec = Recorder({"result": result})
    server = await CniServer(rec, tmp_path / "s.sock").start()
    try:
        conf = netconf(server.path, cniVersion="1.1.0", bridge="br-sfc")
        rc, out, _ = await run_plugin(ADD_ENV, json.dumps(conf).encode())
        assert rc == 0
        assert out == {"cniVersion": "1.1.0", **result}
        (req,) = rec.requests
        assert req == {
            "v": 1, "command": "ADD", "containerId": "c0ffee01", "netns": "/var/run/netns/pod-x", "ifname": "eth1",
            "args": {"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "ns1", "K8S_POD_NAME": "pod1"},
            "path": "/opt/cni/bin", "config": conf,
        }  # fmt: skip
    finally:
        await server.stop()


async def test_dpfd_errors_pass_through_with_their_code(tmp_path: Path) -> None:
    server = await CniServer(
        Recorder(wire.error(wire.ERR_UNSUPPORTED_FIELD, "unsupported field ipam.foo: 1", "d")), tmp_path / "s.sock"
    ).start()
    try:
        rc, out, _ = await run_plugin(ADD_ENV, json.dumps(netconf(server.path)).encode())
        assert rc == 1
        assert out == {"cniVersion": "1.0.0", "code": 2, "msg": "unsupported field ipam.foo: 1", "details": "d"}
    finally:
        await server.stop()


async def test_status_and_gc_need_cni_1_1_0(tmp_path: Path) -> None:
    rec = Recorder({"result": {}})
    server = await CniServer(rec, tmp_path / "s.sock").start()
    try:
        for command in ("STATUS", "GC"):
            rc, out, _ = await run_plugin({"CNI_COMMAND": command}, json.dumps(netconf(server.path)).encode())
            assert (rc, out["code"]) == (1, wire.ERR_INCOMPATIBLE_VERSION)
            rc, out, _ = await run_plugin(
                {"CNI_COMMAND": command, "CNI_PATH": "/x"},
                json.dumps(netconf(server.path, cniVersion="1.1.0")).encode(),
            )
            assert (rc, out) == (0, None)
        assert [r["command"] for r in rec.requests] == ["STATUS", "GC"]
    finally:
        await server.stop()


async def test_server_answers_garbage_with_a_decode_error(tmp_path: Path) -> None:
    server = await CniServer(Recorder({"result": {}}), tmp_path / "s.sock").start()
    try:
        for payload in (b"not json\n", b"[1]\n", b'{"v": 1'):
            reader, writer = await asyncio.open_unix_connection(str(server.path))
            writer.write(payload)
            writer.write_eof()
            answer = wire.decode(await reader.read())
            writer.close()
            await writer.wait_closed()
            assert answer["error"]["code"] == wire.ERR_DECODE, payload
    finally:
        await server.stop()
