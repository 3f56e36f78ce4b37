"""The admin API of a real host dpfd process, driven with dpfctl processes: drain (kept across a kill -9), the DPU
held, uncordon, a failed install in Error, `dpfctl dpu retry` (the backoff is too long to recover on its own), the
watch with its progress lines until Ready, the phase history with times, and `dpfctl dpu reflash` honoured by the
next process after a kill -9 that came right after the request was acknowledged.

Real parts: the dpfd process, etcd, the BFB download over HTTP, the DMS over gRPC, netlink in a network namespace.
Emulated: the BlueField (its sysfs tree and DMS) and the host's power. The test plays the controller. The admin
socket is deep in pytest's temporary directory, longer than a unix socket path may be: both sides shorten it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpfd.host.provisioning import phases as P
from dpfd.sim.bfb_server import BfbServerConfig, BfbServerHandle, start_bfb_server
from dpfd.sim.bluefield.dms_server import DmsFaults, EmulatedDms
from dpfd.sim.host_power import EmulatedHostPower
from dpfd.sim.sysfs import EmulatedSysfs, VethVfNetdevs
from dpfd.store import Store
from tests.integration.provisioning.dpfd_process import DpfdProcess, dpu_intent, host_config, put_intent, report
from tests.integration.provisioning.host_netns import bridge_netns
from tests.waiting import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

REPO = Path(__file__).resolve().parents[3]
NODE = "worker-5"
DPU = "worker-5-0000-03-00"
IMAGE = "bf-bundle-2.9"


async def dpfctl(socket: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dpfd.cli.main", *args, "--socket", str(socket),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def dpfctl_json(socket: Path, *args: str) -> Any:
    rc, out, err = await dpfctl(socket, *args, "-o", "json")
    assert (rc, err) == (0, ""), err
    return json.loads(out)


@pytest.fixture
def ns() -> Iterator[str]:
    with bridge_netns("dpf-adm", "203.0.113.1", "203.0.113.254") as name:
        yield name


@pytest.fixture
async def bfbs() -> AsyncIterator[BfbServerHandle]:
    server = await start_bfb_server(config=BfbServerConfig(default_size=4 << 20))
    try:
        yield server
    finally:
        await server.close()


async def test_drain_retry_watch_and_reflash_through_dpfctl(
    tmp_path: Path, ns: str, store: Store, bfbs: BfbServerHandle, etcd_endpoints: list[str]
) -> None:
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield(pci="0000:03:00", model="BF3", pf_names=("ens1f0np0", "ens1f1np1"), total_vfs=16)
    sriov = asyncio.create_task(sysfs.serve_sriov(vf_netdevs=VethVfNetdevs(ns)))
    dms = EmulatedDms("127.0.0.1:0", state_dir=tmp_path / "dms", install_bytes_per_s=2 << 20, reboot_seconds=0.5,
                      progress_every=1 << 20, name=DPU, faults=DmsFaults(install_error="TOO_LARGE"))  # fmt: skip
    await dms.start()
    power_file = tmp_path / "host-power.json"
    EmulatedHostPower(power_file)
    config = host_config(tmp_path / "host-with-a-long-name-for-its-home-directory", NODE, etcd_endpoints,
                         sysfs=tmp_path / "sys", netns=ns, dms=dms.address, power_file=power_file)  # fmt: skip
    config["provisioning"].update(retryBase=600.0, retryCap=600.0)  # only the operator's retry recovers in time
    dpfd = DpfdProcess(Path(config["stateDir"]).parent, config)
    socket = Path(config["runtimeDir"]) / "admin.sock"
    assert len(os.fsencode(socket)) > 107, "the test wants a socket path too long for sun_path"
    intent = dpu_intent(NODE, DPU, bfbs.url_for(IMAGE), clusterNodeReady=True)

    async def started() -> int:
        await dpfd.start()
        token = await dpfd.token(store)
        await eventually(lambda: socket.exists(), 20, "the admin socket")
        return token

    async def held(token: int) -> dict[str, Any]:
        def ok(r: dict[str, Any] | None) -> bool:
            return r is not None and r["fencingToken"] == token and bool(r["details"].get("drained"))

        got: dict[str, Any] = await eventually(lambda: _matching(store, intent, ok), 20, "the DPU held by the drain")
        return got

    try:
        token = await started()
        rc, out, err = await dpfctl(socket, "drain", "--reason", "rack maintenance")
        assert (rc, err) == (0, ""), err
        assert out.strip().startswith(f"{NODE}: drained") and "(rack maintenance)" in out

        # Drained: the new DPU is held where it starts, and status says so.
        await put_intent(store, intent)
        assert (await held(token))["phase"] == P.INITIALIZING
        st = await dpfctl_json(socket, "status")
        assert (st["node"], st["role"], st["dpus"], st["intents"], st["ready"]) == (NODE, "host", 1, 1, True)
        assert st["etcd"]["connected"] and st["etcd"]["fencing_token"] == token
        assert st["drain"] | {"since": 0} == {"draining": True, "since": 0, "reason": "rack maintenance",
                                              "in_flight": 0, "node": NODE}  # fmt: skip

        # kill -9: the next process is drained as well, and holds the DPU under its own token.
        await dpfd.kill()
        token = await started()
        await held(token)
        assert (await dpfctl_json(socket, "status"))["drain"]["draining"]

        # Uncordon: it provisions, and the install fails; Error waits 600 s for its retry.
        rc, out, err = await dpfctl(socket, "uncordon")
        assert (rc, out.strip(), err) == (0, f"{NODE}: not drained", "")
        failed = await eventually(lambda: _matching(store, intent, lambda r: r["phase"] == P.ERROR), 40, "Error")
        [dpu] = await dpfctl_json(socket, "get", "dpus")
        assert dpu["error"]["phase"] == P.OS_INSTALLING and dpu["attempts"] == 1 and dpu["retry_at"] > 0
        assert failed["details"]["attempts"] == 1

        # Watch (not a terminal: lines) until Ready, while the operator retries with the cause fixed.
        dms.faults = DmsFaults()
        watch = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dpfd.cli.main", "get", "dpus", "-w", "--until", P.READY, "--socket", str(socket),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
        )  # fmt: skip
        assert watch.stdout is not None
        header = await asyncio.wait_for(watch.stdout.readline(), 20)
        assert header.split() == [b"NAMESPACE", b"NAME", b"PHASE", b"PCI", b"BFB", b"SINCE", b"STATUS"]
        rc, out, err = await dpfctl(socket, "dpu", "retry", DPU)
        assert (rc, out.strip(), err) == (0, f"DPU {DPU}: retrying {P.OS_INSTALLING} now", "")
        rest, watch_err = await asyncio.wait_for(watch.communicate(), 60)
        assert watch.returncode == 0, watch_err.decode()
        lines = rest.decode().splitlines()
        # Each report change is a line; phases passed within one report write show as one step.
        assert any(f": {P.ERROR} -> " in line for line in lines), lines
        assert lines[-1].endswith(f" -> {P.READY}"), lines
        assert any("install [" in line for line in lines), lines  # the BFB's bytes on their way to the DMS

        # The phase history with its times; the recent events.
        d = await dpfctl_json(socket, "describe", "dpu", DPU)
        phases = [h["phase"] for h in d["history"]]
        assert phases[:2] == [P.INITIALIZING, P.NODE_EFFECT] and phases[-1] == P.READY
        assert P.ERROR in phases and phases.index(P.ERROR) < phases.index(P.READY)
        times = [h["at"] for h in d["history"]]
        assert all(t > 0 for t in times) and times == sorted(times)
        assert d["error"] is None and all(c["status"] == "True" for c in d["conditions"])
        assert any(e["type"] == "request" and e["fields"]["action"] == "retry" for e in d["events"])
        rc, text, _ = await dpfctl(socket, "describe", "dpu", DPU)
        assert rc == 0 and "Phases:" in text and P.HOST_NETWORK in text

        # Nothing failed: nothing to retry. A DPU that is not here: exit 3.
        rc, out, err = await dpfctl(socket, "dpu", "retry", DPU)
        assert (rc, out) == (1, "") and err == f"dpfctl: DPU {DPU} has no failure to retry (phase {P.READY})\n"
        rc, out, err = await dpfctl(socket, "describe", "dpu", "worker-9-0000-03-00")
        assert rc == 3 and err.startswith("dpfctl: DPU worker-9-0000-03-00 is not provisioned by host worker-5")

        # Reflash, then kill -9 at once: the request was durable before the answer, so the next process flashes.
        assert dms.state.activations == 1
        rc, out, err = await dpfctl(socket, "dpu", "reflash", DPU)
        assert (rc, err) == (0, "") and "flashing again from the start" in out
        await dpfd.kill()
        token = await started()
        await eventually(lambda: dms.state.activations == 2, 60, "the second activation")
        await eventually(lambda: _matching(store, intent, lambda r: r["phase"] == P.READY and r["fencingToken"] == token),
                         60, "Ready after the reflash")  # fmt: skip

        # The node's intents, the log lines.
        [entry] = yaml.safe_load((await dpfctl(socket, "get", "intents", "-o", "yaml"))[1])
        assert entry["ref"]["name"] == DPU and entry["generation"] == 1
        rc, out, _ = await dpfctl(socket, "logs", "--tail", "3")
        assert rc == 0 and len(out.splitlines()) == 3 and all(line.startswith("ts=") for line in out.splitlines())
        assert await dpfd.terminate() == 0, dpfd.log()
    finally:
        sriov.cancel()
        await dpfd.cleanup()
        await dms.stop()


async def _matching(store: Store, intent: Any, ok: Any) -> dict[str, Any] | None:
    r = await report(store, NODE, intent.ref)
    return r if r is not None and ok(r) else None
