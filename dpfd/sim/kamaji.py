"""An emulated Kamaji for dpf-sim: it fulfils the TenantControlPlanes DPF's kamaji cluster manager writes.

For each TenantControlPlane (all namespaces) in the host API it
- takes over the NodePort Service of the same name (DPF's kamaji cluster manager creates it first; Kamaji creates
  it when nobody did): a controller ownerReference to the TenantControlPlane and Kamaji's port;
- starts an emulated Kubernetes API over TLS (the DPU cluster's control plane, in this process) on that node port of
  127.0.0.1, where Kamaji's would answer on every node (networkProfile.address, keepalived's VIP, is not routed
  here); its kubeconfig names the cluster after the TenantControlPlane, as Kamaji's does;
- writes the admin kubeconfig Secret `<tcp>-admin-kubeconfig` (key "admin.conf", owned by the TenantControlPlane so
  it goes with it), and with --kubeconfig-dir the same kubeconfig as `<ns>-<tcp>.kubeconfig` there;
- reports status as Kamaji does: kubernetesResources.version {status: Ready, version}, controlPlaneEndpoint and
  kubeconfig.admin.secretName.
A deleted TenantControlPlane's API server is stopped.

python -m dpfd.sim.kamaji --server URL --state-dir D [--kubeconfig-dir K]   runs until SIGTERM (prints "ready" once
watching).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ensure_tls
from dpfd.sim.watch import keep_watching

log = logging.getLogger("dpfd.sim.kamaji")

Obj = dict[str, Any]
API = "/apis/kamaji.clastix.io/v1alpha1"
TCPS = API + "/tenantcontrolplanes"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
ADMIN_CONF_KEY = "admin.conf"
API_PORT_NAME = "kube-apiserver"
API_TARGET_PORT = 6443  # where Kamaji's API server pods listen


def admin_secret_name(tcp_name: str) -> str:
    return f"{tcp_name}-admin-kubeconfig"


def admin_secret(tcp: Obj, kubeconfig: Obj) -> Obj:
    """The Secret Kamaji writes a TenantControlPlane's admin kubeconfig into."""
    meta = tcp["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": admin_secret_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": {"kamaji.clastix.io/name": meta["name"], "kamaji.clastix.io/project": "kamaji",
                       "kamaji.clastix.io/component": "admin-kubeconfig"},
            "ownerReferences": [{"apiVersion": tcp["apiVersion"], "kind": "TenantControlPlane", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
        },
        "type": "Opaque",
        "data": {ADMIN_CONF_KEY: base64.b64encode(yaml.safe_dump(kubeconfig, sort_keys=False).encode()).decode()},
    }  # fmt: skip


class KamajiError(RuntimeError):
    """The host API refused a write the emulated Kamaji needs."""


@dataclass
class _ControlPlane:
    uid: str
    server: KubeApiServer


class KamajiEmulator:
    """Watches TenantControlPlanes on the host API at `server` (plain HTTP) and runs a control plane for each;
    TLS material for each is kept under `state_dir`."""

    def __init__(self, server: str, state_dir: Path, kubeconfig_dir: Path | None = None) -> None:
        self.server = server.rstrip("/")
        self.state_dir = state_dir
        self.kubeconfig_dir = kubeconfig_dir
        self.planes: dict[tuple[str, str], _ControlPlane] = {}
        self.ready = asyncio.Event()  # set once the first list is handled
        self.http: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as http:
            self.http = http
            try:
                await self._watch_control_planes(http)
            finally:
                await self.close()

    async def close(self) -> None:
        planes, self.planes = list(self.planes.values()), {}
        for plane in planes:
            await plane.server.stop()

    async def _watch_control_planes(self, http: aiohttp.ClientSession) -> None:
        async def listed(items: list[Obj]) -> None:
            for gone in set(self.planes) - {_key(t) for t in items}:
                await self._stop(gone)
            for item in items:
                await self._changed(item)
            self.ready.set()

        async def event(kind: str, tcp: Obj) -> None:
            if kind == "DELETED":
                await self._stop(_key(tcp))
            else:
                await self._changed(tcp)

        await keep_watching(http, self.server + TCPS, "TenantControlPlanes", listed, event, errors=(KamajiError,),
                            log=log)  # fmt: skip

    async def _changed(self, tcp: Obj) -> None:
        key = _key(tcp)
        if tcp["metadata"].get("deletionTimestamp"):
            await self._stop(key)
            return
        plane = self.planes.get(key)
        if plane is not None and plane.uid == tcp["metadata"]["uid"]:
            if _version_status(tcp) != "Ready":
                await self._report(tcp, plane)  # someone reset the status: report again
            return
        if plane is not None:
            await self._stop(key)  # same name, new object
        await self._fulfil(tcp)

    async def _fulfil(self, tcp: Obj) -> None:
        ns, name = _key(tcp)
        port = await self._take_over_service(tcp)
        tls = ensure_tls(self.state_dir / "tls" / f"tcp-{ns}-{name}")
        server = KubeApiServer(tls=tls)
        try:
            await server.start("127.0.0.1", port)
        except OSError as exc:  # another program holds the node port on this machine
            log.warning("TenantControlPlane %s/%s: port %d: %s; serving on another port", ns, name, port, exc)
            await server.start("127.0.0.1", 0)
        plane = _ControlPlane(tcp["metadata"]["uid"], server)
        self.planes[(ns, name)] = plane
        try:
            kubeconfig = server.kubeconfig(context=name)
            await self._apply_secret(admin_secret(tcp, kubeconfig))
            path = self._kubeconfig_file((ns, name))
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.touch(mode=0o600)
                tmp.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
                tmp.replace(path)  # whole or not at all for whoever reads it
            await self._report(tcp, plane)
        except BaseException:
            await self._stop((ns, name))
            raise
        log.info("TenantControlPlane %s/%s ready at %s", ns, name, server.url)

    async def _take_over_service(self, tcp: Obj) -> int:
        """The node port the control plane is reached on: networkProfile.port when set, else the one the API server
        gave the TenantControlPlane's Service (created here when nobody made it). The Service becomes Kamaji's."""
        ns, name = _key(tcp)
        meta = tcp["metadata"]
        url = f"{self.server}/api/v1/namespaces/{ns}/services/{name}"
        async with self._session().get(url) as resp:
            if resp.status == 404:
                service = None
            elif resp.status == 200:
                service = await resp.json()
            else:
                raise KamajiError(f"reading Service {ns}/{name}: HTTP {resp.status}: {await resp.text()}")
        wanted = ((tcp.get("spec") or {}).get("networkProfile") or {}).get("port")
        owner = {"apiVersion": tcp["apiVersion"], "kind": "TenantControlPlane", "name": name, "uid": meta["uid"],
                 "controller": True, "blockOwnerDeletion": True}  # fmt: skip
        port: Obj = {"name": API_PORT_NAME, "protocol": "TCP", "targetPort": API_TARGET_PORT}
        if wanted:
            port.update(port=int(wanted), nodePort=int(wanted))
        if service is None:
            body = {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": ns, "ownerReferences": [owner]},
                    "spec": {"type": "NodePort", "selector": {"kamaji.clastix.io/name": name},
                             "ports": [{"port": API_TARGET_PORT, **port}]}}  # fmt: skip
            async with self._session().post(f"{self.server}/api/v1/namespaces/{ns}/services", json=body) as resp:
                if resp.status not in (200, 201):
                    raise KamajiError(f"creating Service {ns}/{name}: HTTP {resp.status}: {await resp.text()}")
                service = await resp.json()
        else:
            refs = [r for r in service["metadata"].get("ownerReferences") or [] if r.get("uid") != meta["uid"]]
            old: Obj = next((p for p in service["spec"].get("ports") or [] if p.get("name") == API_PORT_NAME), {})
            patch = {"metadata": {"ownerReferences": [*refs, owner]},
                     "spec": {"ports": [{**old, **port}]}}  # fmt: skip
            async with self._session().patch(url, data=json.dumps(patch), headers=MERGE_PATCH) as resp:
                if resp.status != 200:
                    raise KamajiError(f"taking over Service {ns}/{name}: HTTP {resp.status}: {await resp.text()}")
                service = await resp.json()
        for p in service["spec"].get("ports") or []:
            if p.get("name") == API_PORT_NAME and p.get("nodePort"):
                return int(p["nodePort"])
        raise KamajiError(f"Service {ns}/{name} has no node port for {API_PORT_NAME}")

    async def _report(self, tcp: Obj, plane: _ControlPlane) -> None:
        ns, name = _key(tcp)
        version = str(((tcp.get("spec") or {}).get("kubernetes") or {}).get("version") or "")
        endpoint = (plane.server.url or "").removeprefix("https://")
        status = {
            "kubernetesResources": {"version": {"status": "Ready", "version": version}},
            "controlPlaneEndpoint": endpoint,
            "kubeconfig": {"admin": {"secretName": admin_secret_name(name)}},
        }
        url = f"{self.server}{API}/namespaces/{ns}/tenantcontrolplanes/{name}/status"
        async with self._session().patch(url, data=json.dumps({"status": status}), headers=MERGE_PATCH) as resp:
            if resp.status not in (200, 404):  # 404: deleted meanwhile
                raise KamajiError(f"TenantControlPlane {ns}/{name} status: HTTP {resp.status}: {await resp.text()}")

    async def _apply_secret(self, secret: Obj) -> None:
        ns, name = secret["metadata"]["namespace"], secret["metadata"]["name"]
        collection = f"{self.server}/api/v1/namespaces/{ns}/secrets"
        async with self._session().post(collection, json=secret) as resp:
            if resp.status in (200, 201):
                return
            if resp.status != 409:
                raise KamajiError(f"creating Secret {ns}/{name}: HTTP {resp.status}: {await resp.text()}")
        async with self._session().put(f"{collection}/{name}", json=secret) as resp:
            if resp.status != 200:
                raise KamajiError(f"replacing Secret {ns}/{name}: HTTP {resp.status}: {await resp.text()}")

    def _kubeconfig_file(self, key: tuple[str, str]) -> Path | None:
        return self.kubeconfig_dir / f"{key[0]}-{key[1]}.kubeconfig" if self.kubeconfig_dir is not None else None

    async def _stop(self, key: tuple[str, str]) -> None:
        plane = self.planes.pop(key, None)
        if plane is not None:
            await plane.server.stop()
            path = self._kubeconfig_file(key)
            if path is not None:
                path.unlink(missing_ok=True)
            log.info("TenantControlPlane %s/%s gone: its API server stopped", *key)

    def _session(self) -> aiohttp.ClientSession:
        assert self.http is not None, "run() opens the session"
        return self.http


def _key(tcp: Obj) -> tuple[str, str]:
    meta = tcp["metadata"]
    return (str(meta.get("namespace") or "default"), str(meta["name"]))


def _version_status(tcp: Obj) -> str:
    return str((((tcp.get("status") or {}).get("kubernetesResources") or {}).get("version") or {}).get("status") or "")


async def _serve(args: argparse.Namespace) -> None:
    kubeconfig_dir = Path(args.kubeconfig_dir) if args.kubeconfig_dir else None
    emulator = KamajiEmulator(args.server, Path(args.state_dir), kubeconfig_dir)
    task = asyncio.create_task(emulator.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await emulator.ready.wait()
    print("ready", flush=True)
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpfd.sim.kamaji", description="emulated Kamaji")
    parser.add_argument(
        "--server", required=True, help="the host cluster's emulated API (plain HTTP), e.g. http://127.0.0.1:PORT"
    )
    parser.add_argument("--state-dir", required=True, help="where each control plane's TLS material is kept")
    parser.add_argument("--kubeconfig-dir", help="also write each control plane's admin kubeconfig here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
