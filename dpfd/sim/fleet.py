"""The simulated fleet behind `dpf-sim up`: etcd, the emulated Kubernetes APIs, the controller, one dpfd per host."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from dpfd.sim.apply import ApplyError, RestApplier, apply_order, load_manifests
from dpfd.sim.etcd import EtcdCluster, EtcdError
from dpfd.sim.ports import free_port
from dpfd.sim.processes import ProcessGroup, python_module
from dpfd.sim.progress import ProgressPrinter

DPU_ENABLED_LABEL = "feature.node.kubernetes.io/dpu-enabled"
OPERATOR_NAMESPACE = "dpf-operator-system"


class SimError(RuntimeError):
    pass


class Fleet:
    def __init__(self, manifests: Path, state_dir: Path, *, quiet: bool = False) -> None:
        self.manifests = manifests
        self.state_dir = state_dir
        self.quiet = quiet
        self.processes = ProcessGroup(state_dir)
        self.etcd: EtcdCluster | None = None
        self.info: dict[str, Any] = {"stateDir": str(state_dir), "hosts": {}, "dpuClusters": {}}

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
                if obj.get("kind") == "DPUCluster":
                    await self.start_dpu_cluster(applier, obj)

        self.processes.spawn(
            "controller",
            python_module("controller.main", "run", "--kubeconfig", str(host_kubeconfig),
                          "--etcd-endpoints", ",".join(endpoints), "--id", "sim-controller"),
        )  # fmt: skip
        self.say("dpf-controller started")
        for node in [o for o in objects if o.get("kind") == "Node"]:
            labels = node.get("metadata", {}).get("labels", {})
            if labels.get(DPU_ENABLED_LABEL) == "true":
                self.start_host(node["metadata"]["name"], endpoints)
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
        for name in ("etcd", "hosts", "dpuclusters", "logs"):
            shutil.rmtree(self.state_dir / name, ignore_errors=True)
        for name in ("host.kubeconfig", "sim.json"):
            (self.state_dir / name).unlink(missing_ok=True)

    def _validate(self, objects: list[dict[str, Any]]) -> None:
        from dpfd.api.validation import validate_object

        problems = [p.format() for obj in objects for p in validate_object(obj)]
        if problems:
            raise SimError("the manifests are not valid:\n  " + "\n  ".join(problems))

    async def start_kubeapi(self, name: str, kubeconfig: Path) -> str:
        port = free_port()
        proc = self.processes.spawn(
            name, python_module("dpfd.sim.kubeapi", "--port", str(port), "--kubeconfig", str(kubeconfig))
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                if proc.poll() is not None:
                    raise SimError(f"{name} exited with {proc.returncode}; see {self.state_dir}/logs/{name}.log")
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

        crds = generate_crds()
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

    async def start_dpu_cluster(self, applier: RestApplier, cluster: dict[str, Any]) -> None:
        """An emulated API for the DPU cluster, and the admin kubeconfig Secret the DPUCluster names."""
        meta = cluster["metadata"]
        ns, name = meta.get("namespace", "default"), meta["name"]
        kubeconfig = self.state_dir / "dpuclusters" / f"{ns}-{name}.kubeconfig"
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        url = await self.start_kubeapi(f"kubeapi-dpucluster-{ns}-{name}", kubeconfig)
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

    def start_host(self, node: str, endpoints: list[str]) -> None:
        home = self.state_dir / "hosts" / node
        config = {
            "node": node,
            "role": "host",
            "etcd": {"endpoints": endpoints},
            "stateDir": str(home / "state"),
            "runtimeDir": str(home / "run"),
        }
        home.mkdir(parents=True, exist_ok=True)
        (home / "dpfd.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.processes.spawn(f"dpfd-{node}", python_module("dpfd.daemon", "--config", str(home / "dpfd.yaml")))
        self.info["hosts"][node] = {"config": str(home / "dpfd.yaml")}
        self.say(f"host {node}: dpfd started (role host)")

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
                    self.say(f"{name} exited with code {code}; see {self.state_dir}/logs/{name}.log")
                    stop.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
