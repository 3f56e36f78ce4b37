"""A small dynamic Kubernetes client over kubernetes-asyncio's ApiClient (kubeconfig, TLS, auth).

Objects are plain JSON dicts, so the same code serves core kinds and DPF's custom resources. Writes use
JSON merge patches (`application/merge-patch+json`), which the API server applies to custom resources too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import load_kube_config

from controller.kube.objects import Obj
from controller.kube.resources import ResourceType

MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server, naming the request and the server's reason."""

    def __init__(self, status: int, reason: str, message: str, what: str) -> None:
        super().__init__(f"{what}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        return self.status == 410


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: Obj


def _error_from_body(status: int, body: bytes, what: str) -> ApiError:
    reason, message = "", body.decode("utf-8", "replace")[:500]
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            reason = str(doc.get("reason", ""))
            message = str(doc.get("message", message))
    except ValueError:
        pass
    return ApiError(status, reason, message, what)


def _resolve_proxy_once(cfg: Configuration, api: ApiClient) -> None:
    """kubernetes-asyncio's session trusts the environment, so aiohttp re-reads ~/.netrc and the proxy variables
    on every request, each a thread-pool hop: most of the controller's CPU under load. Resolve the proxy here,
    once, and stop the per-request lookups."""
    server = urlsplit(str(cfg.host))
    rest = api.rest_client
    if cfg.proxy is None and server.hostname and not proxy_bypass(server.hostname):
        proxy = getproxies().get(server.scheme)
        if proxy:
            rest.proxy = proxy
    rest.pool_manager._trust_env = False


class KubeClient:
    """List, watch, get, create, merge-patch and delete any resource described by a ResourceType."""

    def __init__(self, api: ApiClient, request_timeout: float = 30.0) -> None:
        self._api = api
        self._timeout = request_timeout

    @classmethod
    async def from_kubeconfig(cls, path: str, *, context: str | None = None, max_connections: int = 128) -> KubeClient:
        cfg = Configuration()
        await load_kube_config(config_file=path, context=context, client_configuration=cfg, persist_config=False)
        # Every informer holds one connection for its watch; leave room for the bounded write fan-out.
        cfg.connection_pool_maxsize = max_connections
        api = ApiClient(configuration=cfg)
        api.user_agent = "dpf-controller"
        _resolve_proxy_once(cfg, api)
        return cls(api)

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        request_timeout: aiohttp.ClientTimeout | float | None = None,
    ) -> aiohttp.ClientResponse:
        # Straight onto kubernetes-asyncio's session (its TLS connector, proxy and auth settings): its generic
        # call_api path re-serialises every body and costs about a third of the controller's CPU per write.
        cfg = self._api.configuration
        rest = self._api.rest_client
        headers = {"Content-Type": content_type, "Accept": "application/json", "User-Agent": self._api.user_agent}
        token = await cfg.get_api_key_with_prefix("authorization")  # runs the refresh hook for expiring tokens
        if token:
            headers["Authorization"] = token
        timeout = request_timeout if request_timeout is not None else self._timeout
        kwargs: dict[str, Any] = {
            "headers": headers,
            "timeout": timeout if isinstance(timeout, aiohttp.ClientTimeout) else aiohttp.ClientTimeout(total=timeout),
        }
        if query:
            kwargs["params"] = query
        if body is not None:
            kwargs["data"] = json.dumps(body, separators=(",", ":"))
        if rest.proxy:
            kwargs["proxy"] = rest.proxy
        if rest.server_hostname:
            kwargs["server_hostname"] = rest.server_hostname
        resp: aiohttp.ClientResponse = await rest.pool_manager.request(method, f"{cfg.host}{path}", **kwargs)
        return resp

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        resp = await self._open(method, path, query=query, body=body, content_type=content_type)
        try:
            data = await resp.read()
        finally:
            resp.release()
        if not 200 <= resp.status < 300:
            raise _error_from_body(resp.status, data, what)
        doc = json.loads(data) if data else {}
        return doc if isinstance(doc, dict) else {}

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        page_size: int = 500,
    ) -> tuple[list[Obj], str]:
        """All objects (following `continue` pages) and the list's resourceVersion to watch from."""
        items: list[Obj] = []
        cont = ""
        while True:
            query = [("limit", str(page_size))]
            if cont:
                query.append(("continue", cont))
            if label_selector:
                query.append(("labelSelector", label_selector))
            doc = await self._call("GET", rt.path(namespace), f"list {rt.plural}", query=query)
            items.extend(doc.get("items") or [])
            lmeta = doc.get("metadata") or {}
            cont = str(lmeta.get("continue") or "")
            if not cont:
                return items, str(lmeta.get("resourceVersion", ""))

    async def watch(
        self,
        rt: ResourceType,
        resource_version: str,
        *,
        namespace: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """Events after `resource_version` until the server ends the watch (ERROR events carry a Status)."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        # No total timeout: the server closes the stream; a silent dead connection trips sock_read.
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=timeout_seconds + 30)
        resp = await self._open("GET", rt.path(namespace), query=query, request_timeout=timeout)
        try:
            if not 200 <= resp.status < 300:
                raise _error_from_body(resp.status, await resp.read(), f"watch {rt.plural}")
            async for line in resp.content:
                line = line.strip()
                if not line:
                    continue
                doc = json.loads(line)
                yield WatchEvent(str(doc.get("type", "")), doc.get("object") or {})
        finally:
            resp.close()

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return await self._call("GET", rt.path(namespace, name), f"get {rt.kind} {namespace}/{name}")

    async def create(self, rt: ResourceType, obj: Obj) -> Obj:
        ns = str((obj.get("metadata") or {}).get("namespace") or "") or None
        name = (obj.get("metadata") or {}).get("name", "")
        return await self._call("POST", rt.path(ns), f"create {rt.kind} {ns or ''}/{name}", body=obj)

    async def patch(
        self, rt: ResourceType, namespace: str, name: str, patch: Obj, *, subresource: str | None = None
    ) -> Obj:
        """JSON merge patch of the object (or of its `status` subresource)."""
        what = f"patch {rt.kind} {namespace}/{name}" + (f" {subresource}" if subresource else "")
        return await self._call(
            "PATCH", rt.path(namespace, name, subresource), what, body=patch, content_type=MERGE_PATCH
        )

    async def delete(self, rt: ResourceType, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete; with `uid`, only that incarnation of the object (a precondition)."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        await self._call("DELETE", rt.path(namespace, name), f"delete {rt.kind} {namespace}/{name}", body=body)
