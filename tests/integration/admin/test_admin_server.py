"""The admin gRPC server on a real unix socket: what it serves, to whom (SO_PEERCRED, socket mode and group), and
how it takes over its socket path."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from admin_helpers import NOBODY, Pair, meta, probe_as_nobody, start_agent, start_relay, stop_relay
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dpfd.admin import AdminServer, AdminServerError, status_from
from dpfd.admin.service import GOSSIP_DISABLED
from dpfd.proto.dpf.admin.v1 import admin_pb2, admin_pb2_grpc

GROUP = 4242  # a gid no account has: membership comes only from the caller's supplementary groups


async def list_members(path: Path) -> admin_pb2.ListMembersResponse:
    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
        return await admin_pb2_grpc.AdminStub(channel).ListMembers(admin_pb2.ListMembersRequest(), timeout=5)


async def rpc_error(path: Path) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_members(path)
    return caught.value


async def test_members_status_health_and_reflection_for_root(sock_dir: Path, pair: Pair) -> None:
    path = sock_dir / "admin.sock"
    started = time.time() - 60
    status = status_from("worker-1", "host", "0.1.0", started, pair.host)
    async with AdminServer(path, members=pair.host.members, status=status, group=GROUP):
        reply = await list_members(path)
        by_name = {m.name: m for m in reply.members}
        assert sorted(by_name) == ["worker-1", "worker-1-0000-03-00"]
        dpu = by_name["worker-1-0000-03-00"]
        assert dpu.state == "alive" and dpu.address == pair.dpu.addr and dpu.incarnation >= 1
        assert (dpu.role, dpu.node, dpu.host, dpu.pci, dpu.version) == (
            "dpu",
            "worker-1-0000-03-00",
            "worker-1",
            "0000-03-00",
            "0.1.0",
        )
        assert by_name["worker-1"].role == "host" and by_name["worker-1"].started < time.time() - 3600

        async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
            st = await admin_pb2_grpc.AdminStub(channel).GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
            assert (st.node, st.role, st.version, st.started) == ("worker-1", "host", "0.1.0", started)
            assert st.gossip.enabled and st.gossip.name == "worker-1" and st.gossip.address == pair.host.addr
            assert (st.gossip.alive, st.gossip.suspect, st.gossip.dead, st.gossip.left) == (2, 0, 0, 0)
            assert st.gossip.health_score == 0

            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "dpf.admin.v1.Admin"):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING

            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            call = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            services = [s.name async for r in call for s in r.list_services_response.service]
            assert "dpf.admin.v1.Admin" in services and "grpc.health.v1.Health" in services


async def test_gossip_off_is_a_failed_precondition(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    async with AdminServer(path, members=None, status=status_from("worker-1", "host", "0.1.0", 0.0)):
        err = await rpc_error(path)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.details() == GOSSIP_DISABLED == "gossip is disabled in /etc/dpf/dpfd.yaml (gossip.enabled)"
        async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
            st = await admin_pb2_grpc.AdminStub(channel).GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
        assert st.node == "worker-1" and not st.HasField("gossip")


async def test_socket_file_mode_group_and_cleanup(sock_dir: Path) -> None:
    path = sock_dir / "run" / "dpfd" / "admin.sock"  # the directory is made
    server = AdminServer(path, members=list, group=GROUP)
    await server.start()
    try:
        st = path.lstat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == GROUP
        private = path.parent / ".admin.sock.d"
        assert stat.S_IMODE(private.lstat().st_mode) == 0o700
        assert (await list_members(path)).members == []
    finally:
        await server.stop()
    assert sorted(os.listdir(path.parent)) == []


async def test_the_socket_mode_keeps_strangers_out(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    async with AdminServer(path, members=list, group=GROUP):
        assert await probe_as_nobody(path) == "EACCES"


async def test_a_stranger_who_connects_is_denied_by_peer_credentials(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    async with AdminServer(path, members=list, group=GROUP, mode=0o666):  # the file lets anyone connect
        relay = await start_relay(path, sock_dir / "nobody", groups=[])
        try:
            err = await rpc_error(relay.path)
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED
            assert f"uid {NOBODY} may not use the dpfd admin API" in (err.details() or "")
            async with grpc.aio.insecure_channel(f"unix:{relay.path}") as channel:  # health is no way around it
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        finally:
            await stop_relay(relay)


async def test_a_member_of_the_group_is_served(sock_dir: Path, pair: Pair) -> None:
    path = sock_dir / "admin.sock"
    async with AdminServer(path, members=pair.host.members, group=GROUP):  # mode 0660, group GROUP
        relay = await start_relay(path, sock_dir / "nobody", groups=[GROUP])
        try:
            reply = await list_members(relay.path)
            assert sorted(m.name for m in reply.members) == ["worker-1", "worker-1-0000-03-00"]
        finally:
            await stop_relay(relay)


async def test_the_grpc_socket_behind_the_gate_serves_nobody(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    async with AdminServer(path, members=list):
        inner = sock_dir / ".admin.sock.d" / "grpc.sock"
        assert inner.exists()
        err = await rpc_error(inner)  # even root, when it does not come through the gate
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert err.details() == "the admin API is served only through its socket"


async def test_a_stale_socket_is_replaced_a_live_one_is_not(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening: what a crashed server leaves
    stale.close()
    async with AdminServer(path, members=list):
        assert (await list_members(path)).members == []
        with pytest.raises(AdminServerError, match="another server is listening"):
            await AdminServer(path, members=list).start()
        assert (await list_members(path)).members == []  # the refused one took nothing away


async def test_a_path_that_is_not_a_socket_is_left_alone(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    path.write_text("keep me")
    with pytest.raises(AdminServerError, match="not a socket"):
        await AdminServer(path, members=list).start()
    assert path.read_text() == "keep me"


async def test_stop_ends_open_connections(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    server = AdminServer(path, members=list)
    await server.start()
    reader, writer = await asyncio.open_unix_connection(str(path))  # a client that never speaks
    await asyncio.wait_for(server.stop(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert not path.exists()


def test_served_under_uvloop(sock_dir: Path) -> None:
    """dpfd runs on uvloop: its transports differ (a closed one refuses write_eof), so the relay is tried there too."""
    import uvloop

    path = sock_dir / "admin.sock"

    async def scenario() -> list[str]:
        agent = await start_agent("worker-1", meta("host", "worker-1"))
        try:
            async with AdminServer(path, members=agent.members):
                names = [m.name for m in (await list_members(path)).members]
                for _ in range(2):  # clients in other processes, which end their connections as they exit
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "dpfd.cli.main", "members", "--socket", str(path), "-o", "json",
                        stdout=subprocess.PIPE,
                    )  # fmt: skip
                    out, _ = await proc.communicate()
                    names += [m["name"] for m in json.loads(out)]
                return names
        finally:
            await agent.stop()

    errors: list[dict[str, object]] = []

    async def main() -> list[str]:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        return await scenario()

    assert uvloop.run(main()) == ["worker-1"] * 3
    assert errors == []
