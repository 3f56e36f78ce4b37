"""KubeApiServer: the emulated Kubernetes API, served over HTTP on loopback and usable in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from dpfd.sim import bootstrap_tokens as bootstrap
from dpfd.sim.kubeapi import snapshot
from dpfd.sim.kubeapi.admission import DpfAdmission, ValidationHooks
from dpfd.sim.kubeapi.auth import Authenticator
from dpfd.sim.kubeapi.core import ApiCore
from dpfd.sim.kubeapi.discovery import VERSION_INFO
from dpfd.sim.kubeapi.handlers import ApiHandlers
from dpfd.sim.kubeapi.negotiation import present
from dpfd.sim.kubeapi.openapi import OpenApiDocuments
from dpfd.sim.kubeapi.patch import clone_obj
from dpfd.sim.kubeapi.resources import Registry, builtin_types
from dpfd.sim.kubeapi.sa_tokens import ServiceAccountTokens, signing_key
from dpfd.sim.kubeapi.store import Store
from dpfd.sim.kubeapi.tls import ServerTls

log = logging.getLogger(__name__)

Obj = dict[str, Any]
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "dpf-operator-system")
SNAPSHOT_INTERVAL = 1.0


class KubeApiServer:
    """An in-memory Kubernetes API server good enough for kubectl and kubernetes-asyncio.

    `validation` replaces dpfd.api.validation (imported lazily otherwise) for objects of the DPF groups;
    `bookmark_interval` is how often watches that allow bookmarks get one. With `tls` it serves HTTPS, asks
    for a token (the admin's or a bootstrap token, see auth.py) and publishes kube-public/cluster-info as
    `kubeadm init` does; without, plain HTTP open to everyone.
    """

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        event_window: int = 10_000,
        validation: ValidationHooks | None = None,
        bookmark_interval: float = 60.0,
        tls: ServerTls | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.tls = tls
        self.registry = Registry()
        for rt in builtin_types():
            self.registry.add(rt)
        self.store = Store(event_window)
        self.core = ApiCore(self.registry, self.store, DpfAdmission(validation))
        # Signed with a key derived from the admin token (kept with the TLS material), so ServiceAccount tokens
        # stay valid across restarts; without TLS nobody checks them and a random key will do.
        key = signing_key(tls.admin_token) if tls is not None else secrets.token_bytes(32)
        self.tokens = ServiceAccountTokens(self.store, key)
        auth = Authenticator(self.store, tls.admin_token, tokens=self.tokens) if tls is not None else None
        self._handlers = ApiHandlers(
            self.core,
            OpenApiDocuments(self.registry),
            bookmark_interval=bookmark_interval,
            auth=auth,
            tokens=self.tokens,
        )
        self._runner: web.ServerRunner | None = None
        self._saver: asyncio.Task[None] | None = None
        self._saved_writes = -1
        self.url = ""
        if state_dir is None or not snapshot.load(state_dir, self.store, self.registry):
            ns_type = self.registry.by_key(("", "namespaces"))
            assert ns_type is not None
            for name in INITIAL_NAMESPACES:
                self.core.create(ns_type, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self._saved_writes = self.store.writes if state_dir is not None else -1

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.ServerRunner(self._handlers.server(), shutdown_timeout=1.0)
        await self._runner.setup()
        ssl_context = self.tls.ssl_context() if self.tls is not None else None
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"{'https' if ssl_context else 'http'}://{bound_host}:{bound_port}"
        if self.tls is not None:
            self._publish_cluster_info(self.tls)
        if self.state_dir is not None:
            self._saver = asyncio.create_task(self._save_periodically())
        return self.url

    async def stop(self) -> None:
        self.store.end_watches()
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._save_if_changed()

    def _save_if_changed(self) -> None:
        if self.state_dir is not None and self.store.writes != self._saved_writes:
            snapshot.save(self.state_dir, self.store)
            self._saved_writes = self.store.writes

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL)
            try:
                self._save_if_changed()
            except OSError as e:
                log.warning("cannot save the API snapshot in %s: %s", self.state_dir, e)

    def _publish_cluster_info(self, tls: ServerTls) -> None:
        """kube-public/cluster-info (the server and its CA, for token discovery) and kube-system/kubeadm-config,
        as `kubeadm init` leaves them; refreshed on every start since the URL may change."""
        public_config: Obj = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "", "cluster": {"certificate-authority-data": tls.ca_data, "server": self.url}}],
            "contexts": None,
            "current-context": "",
            "preferences": {},
            "users": None,
        }
        self.core.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": bootstrap.CLUSTER_INFO_NAME, "namespace": bootstrap.CLUSTER_INFO_NAMESPACE},
                "data": {"kubeconfig": yaml.safe_dump(public_config, sort_keys=False)},
            }
        )
        endpoint = self.url.removeprefix("https://")
        cluster_config = {
            "apiVersion": "kubeadm.k8s.io/v1beta3",
            "kind": "ClusterConfiguration",
            "clusterName": "kubernetes",
            "controlPlaneEndpoint": endpoint,
            "kubernetesVersion": VERSION_INFO["gitVersion"].split("-")[0],
            "certificatesDir": "/etc/kubernetes/pki",
            "networking": {"dnsDomain": "cluster.local", "serviceSubnet": "10.96.0.0/12"},
        }
        self.core.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                "data": {"ClusterConfiguration": yaml.safe_dump(cluster_config, sort_keys=False)},
            }
        )

    def kubeconfig(self, *, context: str = "dpf-sim", namespace: str = "default") -> Obj:
        """A kubeconfig for this server: plain HTTP without credentials, or with TLS its CA and the admin token."""
        if not self.url:
            raise RuntimeError("the API server is not started: no URL to write into a kubeconfig")
        cluster: Obj = {"server": self.url}
        user: Obj = {}
        if self.tls is not None:
            cluster["certificate-authority-data"] = self.tls.ca_data
            user["token"] = self.tls.admin_token
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(self, path: Path, *, context: str = "dpf-sim", namespace: str = "default") -> None:
        """`kubeconfig()` written atomically (mode 0600 when it holds the admin token)."""
        config = self.kubeconfig(context=context, namespace=namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if self.tls is not None else 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(yaml.safe_dump(config, sort_keys=False))
        os.replace(tmp, path)

    # ---- in-process access: same semantics and watch events as over HTTP

    async def register_crds(self, crds: list[Obj]) -> None:
        for crd in crds:
            self.core.apply(crd)

    def objects(self, api_version: str, kind: str, namespace: str | None = None) -> list[Obj]:
        """Copies of the objects of a kind (all namespaces when `namespace` is None), in name order.
        Raises ApiError (404) for a kind the server does not serve."""
        rt, version = self.core.resolve(api_version, kind)
        return [clone_obj(present(rt, version, o)) for o in self.core.list_objects(rt, namespace, None, None)]

    def get_object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        rt, version = self.core.resolve(api_version, kind)
        obj = self.store.get(rt.key, (namespace or "default") if rt.namespaced else "", name)
        return clone_obj(present(rt, version, obj)) if obj is not None else None

    async def apply_object(self, obj: Obj) -> Obj:
        """Create `obj` or merge-patch it into the existing one (namespace defaults to "default").
        Like any main-endpoint write it ignores `status` of kinds with a status subresource: use apply_status.
        Raises ApiError as the HTTP API would answer (422 for invalid DPF objects, 404, ...)."""
        return clone_obj(self.core.apply(obj))

    async def apply_status(self, obj: Obj) -> Obj:
        """Set the status of an existing object (what a controller's status update does)."""
        return clone_obj(self.core.apply_status(obj))

    async def delete_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        propagation: str | None = None,
    ) -> Obj:
        rt, _ = self.core.resolve(api_version, kind)
        ns = (namespace or "default") if rt.namespaced else ""
        return clone_obj(self.core.delete(rt, ns, name, propagation=propagation))

    async def compact(self) -> None:
        """Drop the retained watch events: watches from an older resourceVersion get 410 Gone."""
        self.store.compact()
