"""DpuClusters: the controller's access to every DPU cluster it provisions DPUs into.

For each watched DPUCluster it reads the admin kubeconfig from the Secret named by spec.kubeconfig (key
"admin.conf"), keeps a KubeClient and a Node informer on that cluster, and offers what provisioning needs:
the `kubeadm join` command (with a bootstrap token it creates and reuses), whether a DPU's Node is Ready,
labelling that Node, and a callback when a Node changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.dpucluster.kubeconfig import AdminKubeconfig, KubeconfigError, parse_admin_secret
from controller.dpucluster.tokens import TOKEN_NAMESPACE, BootstrapToken, new_token, ours, token_secret
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import EventType, Informer
from controller.kube.objects import Obj, ObjKey, key_of, labels_of, name_of
from controller.kube.resources import NODES, SECRETS

log = logging.getLogger(__name__)

NodeHandler = Callable[[ObjKey, str], None]
TOKEN_TTL = 24 * 3600.0  # kubeadm's default token lifetime
TOKEN_MIN_LEFT = 3600.0  # a token with less left is not handed out (a DPU's flash and boot take a while)
TOKEN_RECHECK = 60.0  # how long a token is trusted before its Secret is looked at again
RECONNECT_INTERVAL = 5.0


class DpuClusterError(Exception):
    """A DPU cluster cannot be used; the message names the DPUCluster and the reason."""


@dataclass
class _Cluster:
    key: ObjKey
    secret_name: str
    admin: AdminKubeconfig | None = None
    client: KubeClient | None = None
    nodes: Informer | None = None
    task: asyncio.Task[None] | None = None
    error: str = ""  # why the last connection attempt failed
    token: BootstrapToken | None = None
    token_checked: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def describe(self) -> str:
        return f"DPUCluster {self.key}"


class DpuClusters:
    def __init__(
        self,
        host_client: KubeClient,
        *,
        token_ttl: float = TOKEN_TTL,
        token_min_left: float = TOKEN_MIN_LEFT,
        token_recheck: float = TOKEN_RECHECK,
        reconnect_interval: float = RECONNECT_INTERVAL,
        resync_period: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host_client
        self.token_ttl = token_ttl
        self.token_min_left = token_min_left
        self.token_recheck = token_recheck
        self.reconnect_interval = reconnect_interval
        self.resync_period = resync_period
        self.clock = clock
        self._clusters: dict[ObjKey, _Cluster] = {}
        self._handlers: list[NodeHandler] = []
        self._kick = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()

    # -- which clusters ------------------------------------------------------------------------------
    def watch(self, cluster_obj: Obj) -> None:
        """Start (or keep) access to this DPUCluster; a changed spec.kubeconfig reconnects."""
        key = key_of(cluster_obj)
        secret_name = str((cluster_obj.get("spec") or {}).get("kubeconfig") or "")
        c = self._clusters.get(key)
        if c is not None and c.secret_name == secret_name:
            return
        if c is not None:
            self._disconnect(c)
        self._clusters[key] = _Cluster(key, secret_name)
        self._kick.set()

    def forget(self, key: ObjKey) -> None:
        c = self._clusters.pop(key, None)
        if c is not None:
            self._disconnect(c)

    def keys(self) -> list[ObjKey]:
        return list(self._clusters)

    def error(self, key: ObjKey) -> str:
        """Why the cluster is not connected ("" when it is, or was never tried)."""
        c = self._clusters.get(key)
        return c.error if c is not None else ""

    # -- connection ----------------------------------------------------------------------------------
    def _cluster(self, key: ObjKey) -> _Cluster:
        c = self._clusters.get(key)
        if c is None:
            raise DpuClusterError(f"DPUCluster {key} is not watched (unknown, or deleted)")
        return c

    async def _read_admin(self, c: _Cluster) -> AdminKubeconfig:
        if not c.secret_name:
            raise DpuClusterError(f"{c.describe()}: spec.kubeconfig is empty: no admin kubeconfig Secret to use")
        where = f"Secret {c.key.namespace}/{c.secret_name}"
        try:
            secret = await self.host.get(SECRETS, c.key.namespace, c.secret_name)
        except ApiError as e:
            if e.not_found:
                raise DpuClusterError(f"{c.describe()}: spec.kubeconfig names {where}, which does not exist") from e
            raise DpuClusterError(f"{c.describe()}: cannot read {where}: {e}") from e
        try:
            return parse_admin_secret(secret, where)
        except KubeconfigError as e:
            raise DpuClusterError(f"{c.describe()}: {e}") from e

    async def _connect(self, c: _Cluster, *, refresh: bool = False) -> _Cluster:
        """Connect `c` if it is not (or, with `refresh`, if its admin kubeconfig changed). Caller holds c.lock."""
        if c.client is not None and not refresh:
            return c
        try:
            admin = await self._read_admin(c)
        except DpuClusterError as e:
            c.error = str(e)
            raise
        if c.client is not None and c.admin is not None and admin.raw == c.admin.raw:
            return c
        if c.client is not None:
            log.info("admin kubeconfig changed, reconnecting", extra={"object": c.describe()})
            await self._close_connection(c)
        try:
            client = await KubeClient.from_kubeconfig_dict(admin.config)
        except Exception as e:  # kubernetes-asyncio's ConfigException and the like
            c.error = (
                f"{c.describe()}: the admin kubeconfig in Secret {c.key.namespace}/{c.secret_name} is unusable: {e}"
            )
            raise DpuClusterError(c.error) from e
        informer = Informer(client, NODES, resync_period=self.resync_period)
        informer.add_handler(self._node_handler(c.key))
        c.admin, c.client, c.nodes, c.error = admin, client, informer, ""
        c.token, c.token_checked = None, 0.0  # a new kubeconfig may be a new cluster
        c.task = asyncio.create_task(informer.run(), name=f"dpucluster-nodes-{c.key}")
        log.info("connected", extra={"object": c.describe(), "server": admin.server})
        return c

    async def connect(self, key: ObjKey) -> None:
        c = self._cluster(key)
        async with c.lock:
            await self._connect(c)

    async def _close_connection(self, c: _Cluster) -> None:
        task, client = c.task, c.client
        c.task, c.client, c.nodes, c.admin = None, None, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if client is not None:
            await client.close()

    def _disconnect(self, c: _Cluster) -> None:
        """Close `c` in the background (watch/forget are synchronous)."""
        if c.client is None and c.task is None:
            return
        closing = asyncio.create_task(self._close_connection(c), name=f"dpucluster-close-{c.key}")
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _node_handler(self, key: ObjKey) -> Callable[[EventType, Obj, Obj | None], None]:
        def on_node(event: EventType, obj: Obj, old: Obj | None) -> None:
            name = name_of(obj)
            for fn in self._handlers:
                try:
                    fn(key, name)
                except Exception:
                    log.exception("DPU-cluster Node handler failed", extra={"object": f"DPUCluster {key}"})

        return on_node

    # -- what provisioning uses -------------------------------------------------------------------------
    def add_handler(self, fn: NodeHandler) -> None:
        """`fn(cluster_key, node_name)` runs (inline, on the informer's task) whenever a Node of a DPU cluster
        is added, changes, is deleted or is resynced: it should only enqueue work."""
        self._handlers.append(fn)

    def node(self, cluster_key: ObjKey, node: str) -> Obj | None:
        c = self._clusters.get(cluster_key)
        return c.nodes.get("", node) if c is not None and c.nodes is not None else None

    def nodes(self, cluster_key: ObjKey) -> list[Obj] | None:
        """The cluster's Nodes; None while they are not known (not connected, or the first list is not back)."""
        c = self._clusters.get(cluster_key)
        if c is None or c.nodes is None or not c.nodes.synced.is_set():
            return None
        return c.nodes.list()

    def node_ready(self, cluster_key: ObjKey, node: str) -> bool | None:
        """Whether Node `node` of the cluster has condition Ready=True; None while that cluster's Nodes are not
        synced (not connected yet, or its first list has not come back)."""
        c = self._clusters.get(cluster_key)
        if c is None or c.nodes is None or not c.nodes.synced.is_set():
            return None
        obj = c.nodes.get("", node)
        if obj is None:
            return False
        conditions = (obj.get("status") or {}).get("conditions") or []
        return any(cond.get("type") == "Ready" and cond.get("status") == "True" for cond in conditions)

    async def label_node(self, cluster_key: ObjKey, node: str, labels: dict[str, str]) -> None:
        """Merge `labels` into the Node's labels (no write when it already has them)."""
        c = self._cluster(cluster_key)
        async with c.lock:
            await self._connect(c)
        cached = self.node(cluster_key, node)
        if cached is not None and all(labels_of(cached).get(k) == v for k, v in labels.items()):
            return
        assert c.client is not None
        await c.client.patch(NODES, "", node, {"metadata": {"labels": labels}})

    async def admin_client(self, cluster_key: ObjKey) -> KubeClient:
        """The cluster's admin client (connecting first if needed), for controllers that keep objects in the DPU
        cluster. A reconnect (changed admin kubeconfig) gives a new client: compare by identity to redo one-time
        setup. Raises DpuClusterError."""
        c = self._cluster(cluster_key)
        async with c.lock:
            await self._connect(c)
        assert c.client is not None
        return c.client

    async def delete_node(self, cluster_key: ObjKey, node: str) -> bool:
        """Delete Node `node` from the cluster (a deleted DPU's, as DPF does); False if it was not there."""
        c = self._cluster(cluster_key)
        async with c.lock:
            await self._connect(c)
        assert c.client is not None
        try:
            await c.client.delete(NODES, "", node)
        except ApiError as e:
            if e.not_found:
                return False
            raise
        return True

    async def join_command(self, cluster_obj: Obj) -> str:
        """`kubeadm join HOST:PORT --token <id>.<secret> --discovery-token-ca-cert-hash sha256:<hex>` for the
        cluster, with a bootstrap token valid for at least `token_min_left` more seconds."""
        self.watch(cluster_obj)
        c = self._cluster(key_of(cluster_obj))
        async with c.lock:
            await self._connect(c)
            assert c.admin is not None
            token = await self._usable_token(c)
            return (
                f"kubeadm join {c.admin.endpoint} --token {token.value} --discovery-token-ca-cert-hash {c.admin.ca_pin}"
            )

    async def _usable_token(self, c: _Cluster) -> BootstrapToken:
        """The cluster's current join token: the remembered one while it has time left (its Secret looked at
        again every `token_recheck` s), else one of ours found in the cluster, else a new one. Caller holds c.lock."""
        assert c.client is not None
        now = self.clock()
        token = c.token
        if token is not None and token.expires - now > self.token_min_left:
            if now - c.token_checked < self.token_recheck:
                return token
            try:
                still = ours(await c.client.get(SECRETS, TOKEN_NAMESPACE, token.secret_name))
            except ApiError as e:
                if not e.not_found:
                    raise
                still = None
            if still == token:
                c.token_checked = now
                return token
            log.info("join token Secret is gone or changed", extra={"object": c.describe(), "token": token.token_id})
        c.token = None
        secrets, _ = await c.client.list(SECRETS, TOKEN_NAMESPACE)
        found = [t for t in (ours(s) for s in secrets) if t is not None]
        for stale in (t for t in found if t.expires <= now):
            # kube-controller-manager's token cleaner would; the emulated cluster has none
            with contextlib.suppress(ApiError):
                await c.client.delete(SECRETS, TOKEN_NAMESPACE, stale.secret_name)
        usable = sorted((t for t in found if t.expires - now > self.token_min_left), key=lambda t: t.expires)
        if usable:
            token = usable[-1]
        else:
            token = new_token(now, self.token_ttl)
            await c.client.create(SECRETS, token_secret(token))
            log.info("created a join token", extra={"object": c.describe(), "token": token.token_id})
        c.token, c.token_checked = token, now
        return token

    async def check(self, cluster_obj: Obj) -> str:
        """A health check as DPF's DPUCluster controller does it: re-read the admin kubeconfig (reconnecting if it
        changed) and ask the API server its version. Returns the gitVersion; raises DpuClusterError."""
        self.watch(cluster_obj)
        c = self._cluster(key_of(cluster_obj))
        async with c.lock:
            await self._connect(c, refresh=True)
            client = c.client
        assert client is not None
        try:
            version = await client.server_version()
        except Exception as e:  # ApiError, OSError, timeouts, aiohttp's ClientError: not healthy
            raise DpuClusterError(f"{c.describe()}: health check failed: {e}") from e
        return str(version.get("gitVersion", ""))

    # -- lifecycle -----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect watched clusters as they come, retrying the ones that fail, until cancelled."""
        while True:
            self._kick.clear()
            for c in list(self._clusters.values()):
                if c.client is not None or c.lock.locked():
                    continue
                async with c.lock:
                    try:
                        await self._connect(c)
                    except DpuClusterError as e:
                        log.warning("cannot connect to the DPU cluster", extra={"error": str(e)})
                    except Exception as e:
                        c.error = f"{c.describe()}: {e!r}"
                        log.warning("cannot connect to the DPU cluster", extra={"error": c.error})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.reconnect_interval)

    async def close(self) -> None:
        for c in list(self._clusters.values()):
            await self._close_connection(c)
        self._clusters.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
