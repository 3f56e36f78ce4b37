"""An emulated ArgoCD application controller for dpf-sim: it plays ArgoCD's part for the Applications DPF's DPUService
controller writes into the host cluster.

For each Application (all namespaces) it waits a short delay, as a sync takes a moment, then "deploys" it into the
destination cluster (found, as ArgoCD finds it, through the cluster Secret labelled
argocd.argoproj.io/secret-type=cluster whose `name` is the destination's; "in-cluster" is the host): a ConfigMap
`<release>-values` with the Helm values and a DaemonSet `<release>` carrying `serviceDaemonSet`'s labels,
annotations, nodeSelector and updateStrategy, both labelled app.kubernetes.io/instance=<application> as ArgoCD
tracks them. Then it records status.sync (Synced, the revision, what it compared to), status.health (Healthy) and
reconciledAt. An Application annotated argocd.argoproj.io/skip-reconcile=true is left alone. A deleting Application
holding resources-finalizer.argocd.argoproj.io has what it deployed pruned, then the finalizer dropped.

python -m dpfd.sim.argocd --server URL [--sync-delay S]   runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import signal
import ssl
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import yaml

from dpfd.sim.watch import keep_watching

log = logging.getLogger("dpfd.sim.argocd")

Obj = dict[str, Any]
APPLICATIONS = "/apis/argoproj.io/v1alpha1/applications"
FINALIZER = "resources-finalizer.argocd.argoproj.io"
SKIP_RECONCILE = "argocd.argoproj.io/skip-reconcile"
SECRET_TYPE_LABEL = "argocd.argoproj.io/secret-type"
INSTANCE_LABEL = "app.kubernetes.io/instance"  # ArgoCD's default tracking label
IN_CLUSTER = "in-cluster"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


class SyncError(RuntimeError):
    """The Application cannot be synced (unknown destination, the destination refused a write)."""


@dataclass(frozen=True)
class Destination:
    """How to reach a destination cluster: its URL, TLS context and bearer token (from the cluster Secret)."""

    server: str
    ssl: ssl.SSLContext | bool
    token: str | None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = dict(extra or {})
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def release_name(app: Obj) -> str:
    source = (app.get("spec") or {}).get("source") or {}
    return str((source.get("helm") or {}).get("releaseName") or source.get("chart") or _meta(app)["name"])


def values_of(app: Obj) -> Obj:
    source = (app.get("spec") or {}).get("source") or {}
    values = (source.get("helm") or {}).get("valuesObject")
    return values if isinstance(values, dict) else {}


def revision(app: Obj) -> str:
    return str(((app.get("spec") or {}).get("source") or {}).get("targetRevision") or "HEAD")


def image_of(values: Obj, name: str) -> str:
    """The container image the values name: "repo:tag", or {repository, tag} as many charts take it."""
    image = values.get("image")
    if isinstance(image, str) and image:
        return image
    if isinstance(image, dict) and (image.get("repository") or image.get("repo")):
        repo = image.get("repository") or image.get("repo")
        return f"{repo}:{image['tag']}" if image.get("tag") else str(repo)
    return f"{name}:latest"


def enabled_subcharts(values: Obj) -> list[str]:
    """The subcharts an umbrella chart's values switch on (`<name>.enabled: true`), as DPF's dpu-networking chart
    takes them for its system DPUServices."""
    return sorted(k for k, v in values.items() if isinstance(v, dict) and v.get("enabled") is True)


def rendered(app: Obj, namespace: str) -> list[Obj]:
    """What the emulated chart renders from the Application's values: a values ConfigMap and the service DaemonSet
    (DPF's chart contract: serviceDaemonSet.{labels, annotations, nodeSelector, updateStrategy}); an umbrella chart
    renders a DaemonSet for each subchart its values enable instead."""
    values = values_of(app)
    name = release_name(app)
    tracking = {INSTANCE_LABEL: _meta(app)["name"]}
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-values", "namespace": namespace, "labels": tracking},
        "data": {"values.yaml": yaml.safe_dump(values, sort_keys=True)},
    }
    workloads = enabled_subcharts(values) or [name]
    return [configmap, *(_daemonset(w, namespace, values, tracking) for w in workloads)]


def _daemonset(name: str, namespace: str, values: Obj, tracking: dict[str, str]) -> Obj:
    ds_values = values.get("serviceDaemonSet") or {}
    selector = {"app.kubernetes.io/name": name, **tracking}
    pod_meta: Obj = {"labels": {**(ds_values.get("labels") or {}), **selector}}
    if ds_values.get("annotations"):
        pod_meta["annotations"] = dict(ds_values["annotations"])
    pod_spec: Obj = {"containers": [{"name": name, "image": image_of(values, name)}]}
    if ds_values.get("nodeSelector"):  # a NodeSelector (terms), as DPF's chart contract puts it in the affinity
        required = {"requiredDuringSchedulingIgnoredDuringExecution": ds_values["nodeSelector"]}
        pod_spec["affinity"] = {"nodeAffinity": required}
    ds_spec: Obj = {"selector": {"matchLabels": selector}, "template": {"metadata": pod_meta, "spec": pod_spec}}
    if ds_values.get("updateStrategy"):
        ds_spec["updateStrategy"] = ds_values["updateStrategy"]
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": {**(ds_values.get("labels") or {}), **tracking}},
        "spec": ds_spec,
    }


def _collection(api_version: str, kind: str, namespace: str) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{kind.lower()}s"


def _destination_ssl(ca_data: str | None, insecure: bool) -> ssl.SSLContext | bool:
    if insecure:
        return False
    if not ca_data:
        return True
    return ssl.create_default_context(cadata=base64.b64decode(ca_data).decode())


class ArgoEmulator:
    """Watches Applications on the host API at `server` and syncs each `sync_delay` seconds after it changed."""

    def __init__(self, server: str, *, sync_delay: float = 1.0) -> None:
        self.server = server.rstrip("/")
        self.sync_delay = sync_delay
        self.host = Destination(self.server, True, None)
        self.apps: dict[tuple[str, str], Obj] = {}
        self.pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.http: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as http:
            self.http = http
            try:
                await self._watch_applications(http)
            finally:
                for task in self.pending.values():
                    task.cancel()

    async def _watch_applications(self, http: aiohttp.ClientSession) -> None:
        async def listed(items: list[Obj]) -> None:
            for item in items:
                self._changed(item)

        async def event(kind: str, app: Obj) -> None:
            if kind == "DELETED":
                self._forget(app)
            else:
                self._changed(app)

        await keep_watching(http, self.server + APPLICATIONS, "Applications", listed, event, log=log)

    def _key(self, app: Obj) -> tuple[str, str]:
        return (str(_meta(app).get("namespace") or "default"), str(_meta(app)["name"]))

    def _forget(self, app: Obj) -> None:
        key = self._key(app)
        self.apps.pop(key, None)
        task = self.pending.pop(key, None)
        if task is not None:
            task.cancel()

    def _changed(self, app: Obj) -> None:
        """Remember the newest version and sync it once, after the delay (a burst of changes is one sync)."""
        key = self._key(app)
        self.apps[key] = app
        if key not in self.pending:
            self.pending[key] = asyncio.create_task(self._sync_later(key))

    async def _sync_later(self, key: tuple[str, str]) -> None:
        await asyncio.sleep(self.sync_delay)
        self.pending.pop(key, None)
        app = self.apps.get(key)
        if app is None:
            return
        try:
            await self.sync(app)
        except (aiohttp.ClientError, SyncError, TimeoutError) as exc:
            log.warning("Application %s/%s: %s; retrying", key[0], key[1], exc)
            await asyncio.sleep(self.sync_delay)
            if key in self.apps and key not in self.pending:
                self.pending[key] = asyncio.create_task(self._sync_later(key))

    # -- one Application ------------------------------------------------------------------------------
    async def sync(self, app: Obj) -> None:
        meta = _meta(app)
        if meta.get("deletionTimestamp"):
            if FINALIZER in (meta.get("finalizers") or []):
                await self._prune(app)
            return
        if (meta.get("annotations") or {}).get(SKIP_RECONCILE) == "true":
            return
        spec = app.get("spec") or {}
        compared = {"source": spec.get("source") or {}, "destination": spec.get("destination") or {}}
        sync = (app.get("status") or {}).get("sync") or {}
        health = (app.get("status") or {}).get("health") or {}
        if sync.get("status") == "Synced" and sync.get("comparedTo") == compared and health.get("status") == "Healthy":
            return  # nothing changed since the last sync: ArgoCD's status stays as it is
        dest, namespace = await self._destination(app)
        for obj in rendered(app, namespace):
            await self._put(dest, obj)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {
            "sync": {"status": "Synced", "revision": revision(app), "comparedTo": compared},
            "health": {"status": "Healthy"},
            "reconciledAt": now,
            "operationState": {"phase": "Succeeded", "message": "successfully synced (all tasks run)",
                               "startedAt": now, "finishedAt": now,
                               "syncResult": {"revision": revision(app)}},
            "summary": {"images": [image_of(values_of(app), release_name(app))]},
        }  # fmt: skip
        await self._patch_app(app, "/status", {"status": status})
        log.info("synced Application %s/%s at %s", meta.get("namespace"), meta["name"], revision(app))

    async def _prune(self, app: Obj) -> None:
        with contextlib.suppress(SyncError):  # a destination gone with its cluster has nothing left to prune
            dest, namespace = await self._destination(app)
            for obj in rendered(app, namespace):
                await self._delete(dest, obj)
        keep = [f for f in _meta(app).get("finalizers") or [] if f != FINALIZER]
        await self._patch_app(app, "", {"metadata": {"finalizers": keep}})
        log.info("pruned Application %s/%s; finalizer removed", _meta(app).get("namespace"), _meta(app)["name"])

    # -- destinations ---------------------------------------------------------------------------------
    async def _destination(self, app: Obj) -> tuple[Destination, str]:
        dest = (app.get("spec") or {}).get("destination") or {}
        namespace = str(dest.get("namespace") or "default")
        name, server = dest.get("name"), dest.get("server")
        if name == IN_CLUSTER or server == "https://kubernetes.default.svc":
            return self.host, namespace
        app_ns = str(_meta(app).get("namespace") or "default")
        secrets = await self._get(
            self.host, f"/api/v1/namespaces/{app_ns}/secrets?labelSelector={SECRET_TYPE_LABEL}%3Dcluster"
        )
        for secret in (secrets or {}).get("items", []):
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            if (name and data.get("name") == name) or (server and data.get("server") == server):
                config = json.loads(data.get("config") or "{}")
                tls = config.get("tlsClientConfig") or {}
                context = _destination_ssl(tls.get("caData"), bool(tls.get("insecure")))
                return Destination(data["server"].rstrip("/"), context, config.get("bearerToken")), namespace
        raise SyncError(f"there are no clusters with this name: {name or server}")

    def _session(self) -> aiohttp.ClientSession:
        assert self.http is not None, "run() opens the session"
        return self.http

    async def _get(self, dest: Destination, path: str) -> Obj | None:
        async with self._session().get(dest.server + path, ssl=dest.ssl, headers=dest.headers()) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise SyncError(f"GET {path}: HTTP {resp.status}: {await resp.text()}")
            return dict(await resp.json())

    async def _put(self, dest: Destination, obj: Obj) -> None:
        """Create the object, or merge-patch it to the rendered form (ArgoCD's apply), its namespace made first."""
        http = self._session()
        ns = obj["metadata"]["namespace"]
        if await self._get(dest, f"/api/v1/namespaces/{ns}") is None:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            async with http.post(
                dest.server + "/api/v1/namespaces", json=body, ssl=dest.ssl, headers=dest.headers()
            ) as resp:
                if resp.status not in (200, 201, 409):
                    raise SyncError(f"creating namespace {ns}: HTTP {resp.status}: {await resp.text()}")
        url = dest.server + _collection(obj["apiVersion"], obj["kind"], ns)
        async with http.post(url, json=obj, ssl=dest.ssl, headers=dest.headers()) as resp:
            if resp.status in (200, 201):
                return
            if resp.status != 409:
                raise SyncError(
                    f"creating {obj['kind']} {ns}/{obj['metadata']['name']}: HTTP {resp.status}: {await resp.text()}"
                )
        item = f"{url}/{obj['metadata']['name']}"
        async with http.patch(item, data=json.dumps(obj), ssl=dest.ssl, headers=dest.headers(MERGE_PATCH)) as resp:
            if resp.status != 200:
                raise SyncError(
                    f"updating {obj['kind']} {ns}/{obj['metadata']['name']}: HTTP {resp.status}: {await resp.text()}"
                )

    async def _delete(self, dest: Destination, obj: Obj) -> None:
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        url = f"{dest.server}{_collection(obj['apiVersion'], obj['kind'], ns)}/{name}"
        async with self._session().delete(url, ssl=dest.ssl, headers=dest.headers()) as resp:
            if resp.status not in (200, 202, 404):
                raise SyncError(f"deleting {obj['kind']} {ns}/{name}: HTTP {resp.status}: {await resp.text()}")

    async def _patch_app(self, app: Obj, subresource: str, patch: Obj) -> None:
        ns, name = _meta(app).get("namespace") or "default", _meta(app)["name"]
        url = f"{self.server}/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications/{name}{subresource}"
        async with self._session().patch(url, data=json.dumps(patch), headers=MERGE_PATCH) as resp:
            if resp.status not in (200, 404):  # 404: deleted meanwhile
                raise SyncError(
                    f"patching Application {ns}/{name}{subresource}: HTTP {resp.status}: {await resp.text()}"
                )


async def _serve(args: argparse.Namespace) -> None:
    emulator = ArgoEmulator(args.server, sync_delay=args.sync_delay)
    task = asyncio.create_task(emulator.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dpfd.sim.argocd", description="emulated ArgoCD application controller"
    )
    parser.add_argument(
        "--server", required=True, help="the host cluster's emulated API (plain HTTP), e.g. http://127.0.0.1:PORT"
    )
    parser.add_argument(
        "--sync-delay", type=float, default=1.0, help="seconds between a change and its sync (default 1)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
