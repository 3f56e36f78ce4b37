"""The simulated fleet behind `dpf-sim up`: etcd, the emulated Kubernetes APIs (the host cluster's, with DPF's,
ArgoCD's and Kamaji's CRDs, and one per static DPUCluster over TLS), an emulated ArgoCD application controller, an
emulated Kamaji (it serves the control planes of kamaji DPUClusters), the synthetic BFB server, the rack of emulated
BlueFields, the controller, one dpfd per host."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import yaml

from dpfd.sim.apply import ApplyError, RestApplier, apply_order, load_manifests
from dpfd.sim.etcd import EtcdCluster, EtcdError
from dpfd.sim.ports import free_port
from dpfd.sim.processes import ProcessGroup, python_module
from dpfd.sim.progress import ProgressPrinter
from dpfd.sim.rack import HostPlan, RackPlan
from dpfd.sim.rack_plan import FlashTiming, gossip_config, host_dpfd_config, rack_plan

OPERATOR_NAMESPACE = "dpf-operator-system"
DEFAULT_BFB_PORT = 18080
ARGOCD_SYNC_DELAY = 1.0  # seconds the emulated ArgoCD takes to sync an Application
GOSSIP_KEY_FILE = "gossip.key"  # in the state dir: the fleet's one gossip key, new for every `up`


class SimError(RuntimeError):
    pass


@dataclass(frozen=True)
class FleetOptions:
    bfb_port: int = DEFAULT_BFB_PORT  # the synthetic BFB server answers http://127.0.0.1:PORT/<name>.bfb
    flash_seconds: float = 10.0  # how long an emulated BlueField takes to install an image and reboot
    bfb_size: int = 8 << 20
    # What a flashed DPU boots: a real dpfd (role dpu) that joins its DPU cluster; only that dpfd's join (for many
    # DPUs on one machine); or nothing.
    dpu_os: Literal["dpfd", "join", "off"] = "dpfd"
    dataplane: Literal["off", "ovs"] = "off"  # ovs: an Open vSwitch per emulated BlueField, br-sfc on it


class Fleet:
    def __init__(self, manifests: Path, state_dir: Path, *, quiet: bool = False, options: FleetOptions | None = None):
        self.manifests = manifests
        self.state_dir = state_dir
        self.quiet = quiet
        self.options = options or FleetOptions()
        self.processes = ProcessGroup(state_dir)
        self.etcd: EtcdCluster | None = None
        self.info: dict[str, Any] = {"stateDir": str(state_dir), "hosts": {}, "dpuClusters": {}}
        self.gossip_key = state_dir / GOSSIP_KEY_FILE

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"{time.strftime('%H:%M:%S')}  {message}", flush=True)

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            self.say(f"up. Try: kubectl --kubeconfig {self.state_dir / 'host.kubeconfig'} get dpus -A")
            self.say(f"     or: dpfctl --etcd {','.join(self.info['etcdEndpoints'])} get reports")
            self.say("Ctrl-C stops everything.")
            await self.watch_until(stop)
            return 0
        finally:
            self.say("stopping ...")
            self.processes.stop_all()
            if self.etcd is not None:
                self.etcd.stop()
            (self.state_dir / "sim.json").unlink(missing_ok=True)
            self.say("stopped and cleaned up.")

    async def start(self) -> None:
        self._check_not_running()
        self._clear_previous_run()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            objects = apply_order(load_manifests(self.manifests))
        except ApplyError as e:
            raise SimError(str(e)) from e
        self._validate(objects)
        write_gossip_key(self.gossip_key)

        self.etcd = EtcdCluster(self.state_dir / "etcd", size=1)
        try:
            self.etcd.start()
        except EtcdError as e:
            raise SimError(str(e)) from e
        for m in self.etcd.members:
            assert m.proc is not None
            self.processes.adopt(f"etcd-{m.name}", m.proc.pid, self.etcd._argv(m, "new"), str(m.log_path))
        endpoints = self.etcd.endpoints
        self.info["etcdEndpoints"] = endpoints
        self.say(f"etcd ready at {endpoints[0]}")

        await self.start_bfb_server()

        host_kubeconfig = self.state_dir / "host.kubeconfig"
        host_url = await self.start_kubeapi("kubeapi-host", host_kubeconfig)
        self.info["kubeconfig"] = str(host_kubeconfig)
        self.info["kubeUrl"] = host_url
        self.say(f"emulated Kubernetes API at {host_url} (kubeconfig {host_kubeconfig})")

        async with aiohttp.ClientSession() as http:
            applier = RestApplier(http, host_url)
            await self.register_crds(applier)
            for obj in objects:
                try:
                    await applier.apply(obj)
                except ApplyError as e:
                    raise SimError(str(e)) from e
            self.say(f"applied {len(objects)} objects from {self.manifests}")
            for obj in objects:
                if obj.get("kind") == "DPUCluster" and (obj.get("spec") or {}).get("type") == "kamaji":
                    self.expect_kamaji_cluster(obj)
                elif obj.get("kind") == "DPUCluster":
                    await self.start_dpu_cluster(applier, obj)
        await self.start_argocd(host_url)
        await self.start_kamaji(host_url)

        nodes = [o for o in objects if o.get("kind") == "Node"]
        plan = rack_plan(
            nodes, self.state_dir, FlashTiming(self.options.flash_seconds, self.options.bfb_size),
            dpu_os=self.options.dpu_os, dataplane=self.options.dataplane,
        )  # fmt: skip
        await self.start_rack(plan)

        self.processes.spawn(
            "controller",
            python_module("controller.main", "run", "--kubeconfig", str(host_kubeconfig),
                          "--etcd-endpoints", ",".join(endpoints), "--id", "sim-controller",
                          # a gossip member too: DPUDaemonReachable / HostDaemonReachable on the DPUs
                          "--gossip-key-file", str(self.gossip_key), "--gossip-profile", "local",
                          "--gossip-bind", f"127.0.0.1:{free_port()}"),
        )  # fmt: skip
        self.say("dpf-controller started (gossip member: it marks DPUs whose dpfd or host dpfd fails)")
        for host in plan.hosts:
            self.start_host(host, endpoints)
        self._save_info()

    def _check_not_running(self) -> None:
        record = self.state_dir / "processes.json"
        if not record.exists():
            return
        owner = int(json.loads(record.read_text()).get("owner", 0))
        if owner and Path(f"/proc/{owner}").exists():
            raise SimError(f"dpf-sim already runs in {self.state_dir} (pid {owner}); `dpf-sim down --state-dir ...`")
        from dpfd.sim.processes import stop_recorded

        stop_recorded(self.state_dir)  # leftovers of an `up` that was killed

    def _clear_previous_run(self) -> None:
        """Each `up` starts a fresh fleet: remove what an earlier run left (only the paths `up` creates)."""
        for name in ("etcd", "hosts", "dpuclusters", "logs", "tls", "kamaji"):
            shutil.rmtree(self.state_dir / name, ignore_errors=True)
        for name in ("host.kubeconfig", "sim.json", "rack.json", GOSSIP_KEY_FILE):
            (self.state_dir / name).unlink(missing_ok=True)

    def _validate(self, objects: list[dict[str, Any]]) -> None:
        from dpfd.api.validation import validate_object

        problems = [p.format() for obj in objects for p in validate_object(obj)]
        if problems:
            raise SimError("the manifests are not valid:\n  " + "\n  ".join(problems))

    async def start_kubeapi(
        self, name: str, kubeconfig: Path, *, tls_dir: Path | None = None, cluster_name: str = "dpf-sim"
    ) -> str:
        port = free_port()
        argv = python_module("dpfd.sim.kubeapi", "--port", str(port), "--kubeconfig", str(kubeconfig),
                             "--cluster-name", cluster_name)  # fmt: skip
        if tls_dir is not None:
            argv += ["--tls-dir", str(tls_dir)]
        proc = self.processes.spawn(name, argv)
        url = f"{'https' if tls_dir else 'http'}://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        # /version answers without a token; whether the certificate is right is kubectl's and kubeadm's check.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            while True:
                if proc.poll() is not None:
                    raise SimError(_exited(name, proc.returncode, self.state_dir / "logs" / f"{name}.log"))
                try:
                    async with http.get(url + "/version", timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200 and kubeconfig.exists():
                            return url
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise SimError(f"{name} did not answer within 30 s; see {self.state_dir}/logs/{name}.log")
                await asyncio.sleep(0.05)

    async def register_crds(self, applier: RestApplier) -> None:
        from dpfd.api.crds import generate_crds
        from dpfd.sim.argocd_crds import argocd_crds
        from dpfd.sim.kamaji_crds import kamaji_crds

        # ArgoCD's: where DPF's DPUService controller writes Applications; Kamaji's: where DPF's kamaji cluster
        # manager asks for DPU-cluster control planes.
        crds = generate_crds() + argocd_crds() + kamaji_crds()
        for crd in crds:
            await applier.apply(crd)
        # Wait until every kind is served, as kubectl would before applying objects of it.
        deadline = time.monotonic() + 15
        for crd in crds:
            group = crd["spec"]["group"]
            for version in crd["spec"]["versions"]:
                while True:
                    try:
                        await applier.resource(f"{group}/{version['name']}", crd["spec"]["names"]["kind"])
                        break
                    except ApplyError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.05)
        self.say(f"registered {len(crds)} CRDs")

    async def start_argocd(self, host_url: str) -> None:
        """The emulated ArgoCD application controller: it syncs the Applications into the DPU clusters."""
        argv = python_module("dpfd.sim.argocd", "--server", host_url, "--sync-delay", f"{ARGOCD_SYNC_DELAY:g}")
        await self._start_until_ready("argocd", argv, "the emulated ArgoCD")
        self.say("emulated ArgoCD application controller started (it syncs Applications into the DPU clusters)")

    async def start_kamaji(self, host_url: str) -> None:
        """The emulated Kamaji: it serves the control plane of each TenantControlPlane the controller asks for."""
        argv = python_module("dpfd.sim.kamaji", "--server", host_url, "--state-dir", str(self.state_dir / "kamaji"),
                             "--kubeconfig-dir", str(self.state_dir / "dpuclusters"))  # fmt: skip
        await self._start_until_ready("kamaji", argv, "the emulated Kamaji")
        self.say("emulated Kamaji started (it serves the control planes of kamaji DPUClusters)")

    async def _start_until_ready(self, name: str, argv: list[str], what: str) -> None:
        """Spawn a helper that prints "ready" to its log once it serves, and wait for that."""
        proc = self.processes.spawn(name, argv)
        log = self.state_dir / "logs" / f"{name}.log"
        deadline = time.monotonic() + 30
        while "ready" not in _lines(log):
            if proc.poll() is not None:
                raise SimError(_exited(what, proc.returncode, log))
            if time.monotonic() > deadline:
                raise SimError(f"{what} was not ready within 30 s; see {log}")
            await asyncio.sleep(0.05)

    def expect_kamaji_cluster(self, cluster: dict[str, Any]) -> None:
        """A kamaji DPUCluster: the controller asks Kamaji for its control plane; the emulated Kamaji serves it on the
        Service's node port and writes its kubeconfig where a static cluster's goes."""
        meta = cluster["metadata"]
        ns, name = meta.get("namespace", "default"), meta["name"]
        kubeconfig = self.state_dir / "dpuclusters" / f"{ns}-{name}.kubeconfig"
        self.info["dpuClusters"][f"{ns}/{name}"] = {"type": "kamaji", "kubeconfig": str(kubeconfig),
                                                    "secret": f"{name}-admin-kubeconfig"}  # fmt: skip
        self.say(f"DPUCluster {ns}/{name}: type kamaji, its control plane comes from the emulated Kamaji "
                 f"(kubeconfig {kubeconfig} once Ready)")  # fmt: skip

    async def start_dpu_cluster(self, applier: RestApplier, cluster: dict[str, Any]) -> None:
        """An emulated API for the DPU cluster, and the admin kubeconfig Secret the DPUCluster names."""
        meta = cluster["metadata"]
        ns, name = meta.get("namespace", "default"), meta["name"]
        kubeconfig = self.state_dir / "dpuclusters" / f"{ns}-{name}.kubeconfig"
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        tls_dir = self.state_dir / "tls" / f"dpucluster-{ns}-{name}"
        # The kubeconfig names its cluster after the DPUCluster, as Kamaji's does: ArgoCD's cluster Secret takes that
        # name, and the Applications name the DPUCluster as their destination.
        url = await self.start_kubeapi(f"kubeapi-dpucluster-{ns}-{name}", kubeconfig, tls_dir=tls_dir,
                                       cluster_name=name)  # fmt: skip
        secret_name = cluster.get("spec", {}).get("kubeconfig") or f"{name}-admin-kubeconfig"
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": ns, "labels": {"dpu.nvidia.com/cluster": name}},
            "type": "Opaque",
            "data": {"admin.conf": base64.b64encode(kubeconfig.read_bytes()).decode()},
        }
        await applier.apply(secret)
        self.info["dpuClusters"][f"{ns}/{name}"] = {"url": url, "kubeconfig": str(kubeconfig), "secret": secret_name}
        self.say(f"DPUCluster {ns}/{name}: emulated API at {url}, kubeconfig in Secret {ns}/{secret_name}")

    async def start_bfb_server(self) -> None:
        """Synthetic BFB images for any http://127.0.0.1:PORT/<name>.bfb (the manifests' BFB URLs)."""
        port = self.options.bfb_port
        if not _port_free(port):
            raise SimError(f"--bfb-port {port}: the port is in use; choose another (and use it in the BFB URLs)")
        argv = python_module(
            "dpfd.sim.bfb_server", "--listen", f"127.0.0.1:{port}", "--size", str(self.options.bfb_size)
        )
        proc = self.processes.spawn("bfb-server", argv)
        await self._wait_port("bfb-server", proc, port)
        self.info["bfbServer"] = f"http://127.0.0.1:{port}"
        self.say(f"synthetic BFB server at http://127.0.0.1:{port}/<name>.bfb")

    async def start_rack(self, plan: RackPlan) -> None:
        """The emulated hardware: a network namespace, sysfs tree and BlueFields (each with its DMS) per host."""
        path = self.state_dir / "rack.json"
        path.write_text(plan.model_dump_json(indent=1))
        proc = self.processes.spawn("rack", python_module("dpfd.sim.rack", "--plan", str(path)))
        log = self.state_dir / "logs" / "rack.log"
        deadline = time.monotonic() + 60
        while not any(line.startswith("ready ") for line in _lines(log)):
            if proc.poll() is not None:
                raise SimError(_exited("the emulated hardware", proc.returncode, log))
            if time.monotonic() > deadline:
                raise SimError(f"the emulated hardware was not ready within 60 s; see {log}")
            await asyncio.sleep(0.05)
        dpus = sum(len(h.dpus) for h in plan.hosts)
        self.say(f"emulated hardware: {len(plan.hosts)} hosts, {dpus} BlueFields "
                 f"(a flash takes {self.options.flash_seconds:g} s)")  # fmt: skip

    async def _wait_port(self, name: str, proc: Any, port: int) -> None:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SimError(_exited(name, proc.returncode, self.state_dir / "logs" / f"{name}.log"))
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            if time.monotonic() > deadline:
                raise SimError(f"{name} did not listen on port {port} within 30 s")
            await asyncio.sleep(0.05)

    def start_host(self, host: HostPlan, endpoints: list[str]) -> None:
        node = host.node
        home = self.state_dir / "hosts" / node
        # The host's dpfd gossips; the DPUs it flashes do too (bf.cfg carries its key and profile to them).
        gossip = gossip_config(self.gossip_key, free_port())
        config = host_dpfd_config(host, endpoints, home, self.options.flash_seconds, gossip)
        home.mkdir(parents=True, exist_ok=True)
        (home / "dpfd.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.processes.spawn(f"dpfd-{node}", python_module("dpfd.daemon", "--config", str(home / "dpfd.yaml")))
        self.info["hosts"][node] = {"config": str(home / "dpfd.yaml"), "dpus": [d.name for d in host.dpus],
                                    "gossip": gossip["bind"]}  # fmt: skip
        self.say(f"host {node}: dpfd started (role host, {len(host.dpus)} BlueField(s), gossip at {gossip['bind']})")

    def _save_info(self) -> None:
        path = self.state_dir / "sim.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.info, "pid": os.getpid()}, indent=1))
        tmp.replace(path)

    async def watch_until(self, stop: asyncio.Event) -> None:
        printer = ProgressPrinter(self.info["kubeUrl"], self.say)
        progress = asyncio.create_task(printer.run())
        try:
            while not stop.is_set():
                for name, code in self.processes.exited():
                    self.say(_exited(name, code, self.state_dir / "logs" / f"{name}.log"))
                    stop.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)


def write_gossip_key(path: Path) -> None:
    """A fresh gossip key (32 random bytes, base64, one line), readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    path.chmod(0o600)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _exited(what: str, code: int | None, log: Path, tail: int = 15) -> str:
    """What exited, and the end of its log: the reason is there, and a caller may not get to read the file."""
    lines = _lines(log)[-tail:]
    return f"{what} exited with {code}; the end of {log}:\n    " + "\n    ".join(lines or ["(empty)"])


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
