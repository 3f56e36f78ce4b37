"""The admin API's parts on a real AdminServer: events from real etcd reports (phase changes, deletions), the slow
watcher's "missed" marker, log lines with follow, a dpfd of role dpu refusing DPU requests, and the mTLS TCP
listener (served to a client with a certificate of its CA, to nobody else), with dpfctl as a process where the
user's side matters."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from dpfd.admin import AdminServer, AdminService, TcpListener, status_from
from dpfd.admin.events import AdminEvent, ReportFeed
from dpfd.admin.fanout import Fanout
from dpfd.admin.logbuffer import LogBuffer
from dpfd.admin.service import NOT_A_HOST
from dpfd.api.intents import ObjectRef, Report
from dpfd.host.dms.certs import make_ca, write_cert_set
from dpfd.host.dms.tls import TlsFiles
from dpfd.proto.dpf.admin.v1 import admin_pb2, admin_pb2_grpc
from dpfd.sim.ports import free_port
from dpfd.store import Store, keys
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[3]
NODE = "worker-1"
REF = ObjectRef(kind="DPU", namespace="dpf-operator-system", name="worker-1-0000-03-00")


async def dpfctl(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dpfd.cli.main", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def stub(channel: grpc.aio.Channel) -> admin_pb2_grpc.AdminStub:
    return admin_pb2_grpc.AdminStub(channel)


async def put_report(store: Store, phase: str, **details: object) -> None:
    report = Report(node=NODE, ref=REF, observedGeneration=1, phase=phase, details=dict(details))
    await store.put(keys.report_key(NODE, REF), report.model_dump_json())


async def test_report_changes_in_etcd_are_events(sock_dir: Path, store: Store) -> None:
    await put_report(store, "Initializing")  # before the feed: the baseline, not an event
    events: Fanout[AdminEvent] = Fanout()
    feed = ReportFeed(store, NODE, events)
    feed.start()
    path = sock_dir / "admin.sock"
    try:
        async with (
            AdminServer(path, service=AdminService(events=events)),
            grpc.aio.insecure_channel(f"unix:{path}") as ch,
        ):
            call = stub(ch).WatchEvents(admin_pb2.WatchEventsRequest(kind="DPU"))
            first = await call.read()
            assert first.type == "synced"
            await eventually(lambda: feed._listed, 10, "the feed's first list")
            await put_report(store, "Pending", progress={"downloaded": 1024, "size": 4096})
            await put_report(store, "Pending", progress={"downloaded": 4096, "size": 4096})
            await store.delete(keys.report_key(NODE, REF))
            got = [await asyncio.wait_for(call.read(), 10) for _ in range(3)]
            call.cancel()
    finally:
        await feed.stop()
    assert [(e.type, e.previous_phase, e.phase) for e in got] == [
        ("phase", "Initializing", "Pending"),
        ("report", "Pending", "Pending"),
        ("deleted", "Pending", ""),
    ]
    assert (got[0].name, got[0].namespace, got[0].kind) == (REF.name, REF.namespace, "DPU")
    assert (got[0].progress.step, got[0].progress.done, got[0].progress.total) == ("download", 1024, 4096)
    assert got[1].progress.done == 4096


async def test_a_slow_watcher_is_told_how_many_events_it_missed(sock_dir: Path) -> None:
    events: Fanout[AdminEvent] = Fanout(history=100, per_subscriber=3)
    path = sock_dir / "admin.sock"
    async with AdminServer(path, service=AdminService(events=events)), grpc.aio.insecure_channel(f"unix:{path}") as ch:
        call = stub(ch).WatchEvents(admin_pb2.WatchEventsRequest())
        assert (await call.read()).type == "synced"
        for i in range(10):  # nobody reads meanwhile: the server's queue for this watcher holds 3
            events.publish(AdminEvent(type="member", name=f"m{i}", message=f"member m{i} joined"))
        got = [await asyncio.wait_for(call.read(), 10) for _ in range(4)]
        call.cancel()
    assert (got[0].type, got[0].missed) == ("missed", 7)
    assert [e.name for e in got[1:]] == ["m7", "m8", "m9"]

    # A watcher asking for the recent events gets them first, then "synced".
    async with AdminServer(path, service=AdminService(events=events)), grpc.aio.insecure_channel(f"unix:{path}") as ch:
        call = stub(ch).WatchEvents(admin_pb2.WatchEventsRequest(replay=True, name="m9"))
        got = [await asyncio.wait_for(call.read(), 10) for _ in range(2)]
        call.cancel()
    assert [(e.type, e.name) for e in got] == [("member", "m9"), ("synced", "")]


async def test_logs_tail_and_follow(sock_dir: Path) -> None:
    logs = LogBuffer(lines=50)
    logger = logging.getLogger("dpfd.test.admin")
    logger.setLevel(logging.INFO)
    logs.install(logger)
    path = sock_dir / "admin.sock"
    try:
        for i in range(5):
            logger.info("line %d", i)
        async with AdminServer(path, service=AdminService(logs=logs.lines)):
            rc, out, err = await dpfctl("logs", "--tail", "2", "--socket", str(path))
            assert (rc, err) == (0, "")
            assert [line.rsplit("msg=", 1)[1] for line in out.splitlines()] == ['"line 3"', '"line 4"']

            follower = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dpfd.cli.main", "logs", "-f", "--tail", "1", "-o", "json", "--socket", str(path),
                stdout=subprocess.PIPE, cwd=REPO,
            )  # fmt: skip
            assert follower.stdout is not None
            try:
                first = json.loads(await asyncio.wait_for(follower.stdout.readline(), 20))
                assert first["line"].endswith('msg="line 4"') and first["level"] == "info"
                logger.warning("a new one")
                second = json.loads(await asyncio.wait_for(follower.stdout.readline(), 20))
                assert second["line"].endswith('msg="a new one"') and second["level"] == "warning"
            finally:
                follower.kill()
                await follower.wait()
    finally:
        logs.uninstall(logger)


async def test_a_dpu_role_dpfd_refuses_dpu_requests(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    service = AdminService(status=status_from("worker-1-0000-03-00", "dpu", "0.1.0", 0.0))
    async with AdminServer(path, service=service), grpc.aio.insecure_channel(f"unix:{path}") as ch:
        for call in (
            stub(ch).ListDpus(admin_pb2.ListDpusRequest()),
            stub(ch).RetryDpu(admin_pb2.DpuActionRequest(name="x")),
            stub(ch).Drain(admin_pb2.DrainRequest()),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.FAILED_PRECONDITION, NOT_A_HOST)
        rc, out, err = await dpfctl("dpu", "reflash", "x", "--socket", str(path))
        assert (rc, out, err) == (1, "", f"dpfctl: {NOT_A_HOST}\n")
        rc, out, err = await dpfctl("status", "--socket", str(path), "-o", "yaml")
        assert rc == 0 and "role: dpu" in out and "drain: null" in out


async def test_tcp_with_mutual_tls_serves_only_clients_with_a_certificate_of_its_ca(
    sock_dir: Path, tmp_path: Path
) -> None:
    certs = write_cert_set(tmp_path / "tls", "admin", "127.0.0.1")
    stranger = write_cert_set(tmp_path / "other", "admin", "127.0.0.1", make_ca("someone-else"))
    port = free_port()
    tcp = TcpListener(f"127.0.0.1:{port}", TlsFiles(certs.ca, certs.server_cert, certs.server_key))
    path = sock_dir / "admin.sock"
    service = AdminService(status=status_from(NODE, "host", "0.1.0", 0.0))
    async with AdminServer(path, service=service, tcp=tcp) as server:
        assert server.tcp_port == port
        good = TlsFiles(certs.ca, certs.client_cert, certs.client_key).client_credentials()
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", good) as ch:
            assert (await stub(ch).GetStatus(admin_pb2.GetStatusRequest(), timeout=5)).node == NODE

        # A certificate from another CA, or none at all: no handshake, no answer.
        other = TlsFiles(certs.ca, stranger.client_cert, stranger.client_key).client_credentials()
        anonymous = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
        for credentials in (other, anonymous):
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as ch:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub(ch).GetStatus(admin_pb2.GetStatusRequest(), timeout=5)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

        tls = ["--tls-ca", str(certs.ca), "--tls-cert", str(certs.client_cert), "--tls-key", str(certs.client_key)]
        rc, out, err = await dpfctl("status", "--address", f"127.0.0.1:{port}", *tls, "-o", "json")
        assert (rc, err) == (0, "") and json.loads(out)["node"] == NODE
        rc, out, err = await dpfctl("status", "--address", f"127.0.0.1:{port}")
        assert (rc, out) == (2, "") and "needs --tls-ca, --tls-cert, --tls-key" in err


def test_a_socket_path_longer_than_sun_path_is_served_and_reached(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "run"
    path = deep / "admin.sock"
    assert len(os.fsencode(path)) > 107

    async def scenario() -> tuple[int, str, str]:
        async with AdminServer(path, service=AdminService(status=status_from(NODE, "host", "0.1.0", 0.0))):
            assert path.is_socket()
            return await dpfctl("status", "--socket", str(path), "-o", "json")

    rc, out, err = asyncio.run(scenario())
    assert (rc, err) == (0, "") and json.loads(out)["node"] == NODE
    assert not path.exists()
