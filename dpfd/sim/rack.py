"""The emulated hardware of a simulated fleet, in one process: for every host a network namespace with its
br-dpu bridge, a sysfs tree with its BlueFields (whose sriov_numvfs writes make veth VFs in that namespace),
and for every BlueField an emulated DMS on its own port.

  python -m dpfd.sim.rack --plan FILE

The plan (JSON, see `RackPlan`) is written by `dpf-sim up` or a benchmark; the rack builds everything, prints
`ready N` (N BlueFields), serves until SIGTERM/SIGINT, then removes its namespaces. Namespaces a killed rack
left behind are removed when the next one starts with the same plan.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dpfd.host.netns import NETNS_DIR, iproute
from dpfd.sim.bluefield.dms_server import EmulatedDms
from dpfd.sim.bluefield.dpu_os import DpuOsOptions
from dpfd.sim.ovs import PrivateOvs
from dpfd.sim.port_ends import PortEnds, make_port_ends, remove_port_ends
from dpfd.sim.sysfs import EmulatedSysfs, VethVfNetdevs


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DpuPlan(_Plan):
    name: str = Field(description="The DPU object's name (the emulated BlueField's name in logs and state).")
    pci: str = Field(description="domain:bus:device, e.g. 0000:03:00")
    model: Literal["BF2", "BF3"] = "BF3"
    pf_names: tuple[str, ...] = ("p0", "p1")
    total_vfs: int = 127  # what a BlueField-3 PF offers
    dms_port: int
    state_dir: Path


class HostPlan(_Plan):
    node: str
    netns: str | None = Field(default=None, description="The host's network namespace; None: no br-dpu, no VFs.")
    bridge_address: str = Field(default="198.51.100.1/24", description="br-dpu's IPv4 address, CIDR form.")
    gateway: str = Field(default="198.51.100.254", description="The default route over br-dpu (the OOB network's).")
    sysfs_root: Path
    dpus: list[DpuPlan] = Field(default_factory=list)


class RackPlan(_Plan):
    hosts: list[HostPlan]
    install_bytes_per_s: float = Field(default=0.0, ge=0.0, description="DMS install pace; 0 = unthrottled.")
    reboot_seconds: float = Field(default=1.0, ge=0.0)
    dataplane: Literal["off", "ovs"] = Field(
        default="off", description="ovs: each BlueField gets its own Open vSwitch (br-sfc) for its DPU's dpfd."
    )
    sriov_poll_seconds: float = Field(default=0.05, gt=0.0, description="How often the emulated kernel looks at "
                                      "sriov_numvfs writes (per host; a hundred hosts share one process).")  # fmt: skip
    dpu_os: Literal["off", "dpfd", "join"] = Field(
        default="off",
        description="What a flashed DPU boots: nothing; a real dpfd (role dpu); or only that dpfd's cluster join "
        "(for many DPUs on one machine).",
    )


OVS_RECORD = "ovs.json"  # in a BlueField's state dir: where its Open vSwitch runs (dpf-sim exec reads it)


def address_of_dpu(dpu: DpuPlan) -> str:
    return f"127.0.0.1:{dpu.dms_port}"


def make_host_netns(name: str, bridge_address: str, gateway: str) -> None:
    """A fresh namespace `name` holding lo and the OOB bridge br-dpu with `bridge_address` and the default route
    through `gateway`, as an admin prepares a DPF host (replaces a stale namespace of that name)."""
    remove_netns(name)
    _ip("netns", "add", name)
    address, _, prefix = bridge_address.partition("/")
    with iproute(name) as ipr:  # setns, not pyroute2's fork: a forked child relays signals to us
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        ipr.link("add", ifname="br-dpu", kind="bridge")
        index = ipr.link_lookup(ifname="br-dpu")[0]
        ipr.link("set", index=index, state="up")
        ipr.addr("add", index=index, address=address, prefixlen=int(prefix or 24))
        ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)


def remove_netns(name: str) -> None:
    if os.path.exists(os.path.join(NETNS_DIR, name)):
        _ip("netns", "del", name)


def _ip(*args: str) -> None:
    # iproute2, not pyroute2.netns: that forks a Python child, which under gRPC can crash or relay signals to us.
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {out.stderr.strip() or f'exit {out.returncode}'}")


class Rack:
    """Builds and runs a plan's hardware; `stop()` takes it all down again."""

    def __init__(self, plan: RackPlan) -> None:
        self.plan = plan
        self.dms: dict[str, EmulatedDms] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._netns: list[str] = []
        self.ovs: dict[str, PrivateOvs] = {}
        self.port_ends: dict[str, PortEnds] = {}

    async def start(self) -> None:
        try:
            for host in self.plan.hosts:
                await self._start_host(host)
        except BaseException:
            await self.stop()
            raise

    async def _start_host(self, host: HostPlan) -> None:
        sysfs = EmulatedSysfs(host.sysfs_root)
        if host.netns is not None:
            # A thread: pyroute2's sync API runs its own event loop, which cannot nest in ours.
            await asyncio.to_thread(make_host_netns, host.netns, host.bridge_address, host.gateway)
            self._netns.append(host.netns)
        for dpu in host.dpus:
            if not sysfs.function_dir(f"{dpu.pci}.0").exists():  # a restarted rack keeps the tree it made
                sysfs.add_bluefield(pci=dpu.pci, model=dpu.model, pf_names=dpu.pf_names, total_vfs=dpu.total_vfs)
            dataplane = await self._start_ovs(dpu) if self.plan.dataplane == "ovs" else None
            dms = EmulatedDms(
                address_of_dpu(dpu),
                state_dir=dpu.state_dir,
                install_bytes_per_s=self.plan.install_bytes_per_s,
                reboot_seconds=self.plan.reboot_seconds,
                name=dpu.name,
                dpu_os=None
                if self.plan.dpu_os == "off"
                else DpuOsOptions(join_only=self.plan.dpu_os == "join", dataplane=dataplane),
            )
            await dms.start()
            self.dms[dpu.name] = dms
        vfs = VethVfNetdevs(host.netns) if host.netns is not None else None
        self._tasks.append(
            asyncio.create_task(
                sysfs.serve_sriov(poll_interval=self.plan.sriov_poll_seconds, vf_netdevs=vfs), name=f"sriov {host.node}"
            )
        )

    async def _start_ovs(self, dpu: DpuPlan) -> dict[str, Any]:
        """The BlueField's Open vSwitch with br-sfc as DPF's flavor script makes it; returns the `dataplane:` settings
        its dpfd gets, and records where it runs for `dpf-sim exec`."""
        ovs = await asyncio.to_thread(PrivateOvs().start)
        self.ovs[dpu.name] = ovs
        await asyncio.to_thread(ovs.add_bridge, "br-sfc")
        ends = await asyncio.to_thread(make_port_ends, ovs, dpu.pf_names)
        self.port_ends[dpu.name] = ends
        # The CNI socket in the OVS's short rundir: a unix socket path has at most 107 bytes, a state dir can be long.
        cni_socket = str(ovs.rundir / "sfc-cni.sock")
        record = {"name": dpu.name, "netns": ovs.netns, "rundir": str(ovs.rundir), "db": ovs.db,
                  "cniSocket": cni_socket, **ends.record()}  # fmt: skip
        dpu.state_dir.mkdir(parents=True, exist_ok=True)
        (dpu.state_dir / OVS_RECORD).write_text(json.dumps(record, indent=1) + "\n")
        # system: physical and pf ports are the veth ends make_port_ends put in the OVS's namespace, where the
        # SFC CNI puts the host ends of pods' veths too.
        return {"enabled": True, "ovsdb": ovs.db, "ofctlTarget": ovs.mgmt("br-sfc"), "portType": "system",
                "cniNetns": ovs.netns, "cniSocket": cni_socket}  # fmt: skip

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for dms in self.dms.values():
            await dms.stop()
        for ends in self.port_ends.values():
            await asyncio.to_thread(remove_port_ends, ends)
        for ovs in self.ovs.values():
            await asyncio.to_thread(ovs.stop)
        for name in self._netns:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(remove_netns, name)


async def serve(plan: RackPlan) -> None:
    rack = Rack(plan)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await rack.start()
    print(f"ready {len(rack.dms)}", flush=True)
    try:
        await stop.wait()
    finally:
        await rack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpfd.sim.rack", description=__doc__.split("\n")[0])
    parser.add_argument("--plan", type=Path, required=True, help="the RackPlan JSON file")
    args = parser.parse_args(argv)
    try:
        plan = RackPlan.model_validate_json(args.plan.read_text())
    except (OSError, ValueError) as e:
        print(f"rack: {args.plan}: {e}", file=sys.stderr)
        return 2
    import uvloop

    uvloop.run(serve(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
