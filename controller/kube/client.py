"""A small dynamic Kubernetes client over kubernetes-asyncio's ApiClient (kubeconfig, TLS, auth).

Objects are plain JSON dicts, so the same code serves core kinds and DPF's custom resources. Writes use
JSON merge patches (`application/merge-patch+json`), which the API server applies to custom resources too.
Watches stream over kubernetes-asyncio's aiohttp session; the other calls go over the lean HTTP/1.1 pool of
http1.py with the same TLS settings and token (aiohttp when a proxy is configured).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import load_kube_config, load_kube_config_from_dict

from controller.kube.http1 import Http1Pool
from controller.kube.objects import Obj
from controller.kube.resources import ResourceType
from dpfd import fastjson

MERGE_PATCH = "application/merge-patch+json"
# Paths made only of these need no percent-encoding (object names are DNS labels): the lean client sends them as
# they are; any other path goes through aiohttp, which quotes it.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._~-]*")


class ApiError(Exception):
    """A non-2xx answer from the API server, naming the request and the server's reason."""

    def __init__(
        self, status: int, reason: str, message: str, what: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{what}: {status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.details = details or {}  # the Status's details: causes, retryAfterSeconds, ...

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


def _watch_event(line: bytes) -> WatchEvent:
    doc = fastjson.loads(line)
    return WatchEvent(str(doc.get("type", "")), doc.get("object") or {})


def _error_from_body(status: int, body: bytes, what: str) -> ApiError:
    reason, message = "", body.decode("utf-8", "replace")[:500]
    details = None
    try:
        doc = fastjson.loads(body)
        if isinstance(doc, dict):
            reason = str(doc.get("reason", ""))
            message = str(doc.get("message", message))
            details = doc.get("details") if isinstance(doc.get("details"), dict) else None
    except ValueError:
        pass
    return ApiError(status, reason, message, what, details)


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


def _ssl_context(cfg: Configuration) -> ssl.SSLContext:
    """The TLS settings kubernetes-asyncio's own REST client derives from the configuration (client/rest.py)."""
    context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        context.load_cert_chain(cfg.cert_file, keyfile=cfg.key_file)
    if not cfg.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cfg.disable_strict_ssl_verification:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def _lean_pool(api: ApiClient, timeout: float) -> tuple[Http1Pool, str] | None:
    """The lean HTTP/1.1 pool and the server URL's path prefix, for a server reached without a proxy."""
    cfg = api.configuration
    url = urlsplit(str(cfg.host))
    if api.rest_client.proxy or url.scheme not in ("http", "https") or not url.hostname:
        return None
    prefix = url.path.rstrip("/")
    if not _PLAIN_PATH.fullmatch(prefix):
        return None
    https = url.scheme == "https"
    pool = Http1Pool(
        url.hostname,
        url.port or (443 if https else 80),
        ssl_context=_ssl_context(cfg) if https else None,
        server_hostname=cfg.tls_server_name or None,
        limit=int(cfg.connection_pool_maxsize),
        timeout=timeout,
    )
    return pool, prefix


class KubeClient:
    """List, watch, get, create, merge-patch and delete any resource described by a ResourceType."""

    def __init__(self, api: ApiClient, request_timeout: float = 30.0) -> None:
        self._api = api
        self._timeout = request_timeout
        self._client_timeout = aiohttp.ClientTimeout(total=request_timeout)
        lean = _lean_pool(api, request_timeout)
        self._http1: Http1Pool | None = lean[0] if lean is not None else None
        self._prefix = lean[1] if lean is not None else ""

    @classmethod
    async def from_kubeconfig(cls, path: str, *, context: str | None = None, max_connections: int = 128) -> KubeClient:
        cfg = Configuration()
        await load_kube_config(config_file=path, context=context, client_configuration=cfg, persist_config=False)
        return cls._from_configuration(cfg, max_connections)

    @classmethod
    async def from_kubeconfig_dict(cls, config: dict[str, Any], *, max_connections: int = 16) -> KubeClient:
        """A client from a parsed kubeconfig (a DPU cluster's admin.conf read from its Secret)."""
        cfg = Configuration()
        await load_kube_config_from_dict(config, client_configuration=cfg)
        return cls._from_configuration(cfg, max_connections)

    @classmethod
    def _from_configuration(cls, cfg: Configuration, max_connections: int) -> KubeClient:
        # Every informer holds one connection for its watch; leave room for the bounded write fan-out.
        cfg.connection_pool_maxsize = max_connections
        api = ApiClient(configuration=cfg)
        api.user_agent = "dpf-controller"
        _resolve_proxy_once(cfg, api)
        return cls(api)

    async def close(self) -> None:
        if self._http1 is not None:
            self._http1.close()
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _headers(self, content_type: str) -> dict[str, str]:
        cfg = self._api.configuration
        headers = {"Content-Type": content_type, "Accept": "application/json", "User-Agent": str(self._api.user_agent)}
        # kubeconfig and in-cluster tokens are kept as "BearerToken" ("Bearer <token>"); the lookup also runs the
        # refresh hook of expiring tokens. "authorization" is what a caller may have set by hand.
        token = await cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = str(token)
        return headers

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
        if request_timeout is None:
            timeout = self._client_timeout
        elif isinstance(request_timeout, aiohttp.ClientTimeout):
            timeout = request_timeout
        else:
            timeout = aiohttp.ClientTimeout(total=request_timeout)
        kwargs: dict[str, Any] = {"headers": await self._headers(content_type), "timeout": timeout}
        if query:
            kwargs["params"] = query
        if body is not None:
            kwargs["data"] = fastjson.dumps(body)
        if rest.proxy:
            kwargs["proxy"] = rest.proxy
        if rest.server_hostname:
            kwargs["server_hostname"] = rest.server_hostname
        resp: aiohttp.ClientResponse = await rest.pool_manager.request(method, f"{cfg.host}{path}", **kwargs)
        return resp

    async def _send(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> bytes:
        """The answer's body; raises ApiError for a non-2xx answer."""
        if self._http1 is not None and _PLAIN_PATH.fullmatch(path):
            target = self._prefix + path
            if query:
                target += "?" + urlencode(query, quote_via=quote)
            data = fastjson.dumps(body) if body is not None else None
            answer = await self._http1.request(method, target, await self._headers(content_type), data)
            status, content = answer.status, answer.body
        else:
            resp = await self._open(method, path, query=query, body=body, content_type=content_type)
            try:
                content = await resp.read()  # read in full even when unused, so the connection is reused
            finally:
                resp.release()
            status = resp.status
        if not 200 <= status < 300:
            raise _error_from_body(status, content, what)
        return content

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
        data = await self._send(method, path, what, query=query, body=body, content_type=content_type)
        doc = fastjson.loads(data) if data else {}
        return doc if isinstance(doc, dict) else {}

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
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
            if field_selector:
                query.append(("fieldSelector", field_selector))
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
            # Events come one per line, often many in one read: split the reads here rather than awaiting a
            # readline per event (which also refuses lines longer than aiohttp's buffer limit).
            rest = b""
            async for chunk in resp.content.iter_any():
                lines = (rest + chunk if rest else chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    if line.strip():
                        yield _watch_event(line)
            if rest.strip():
                yield _watch_event(rest)
        finally:
            resp.close()

    async def server_version(self) -> Obj:
        """GET /version: the API server's build (what a health check asks)."""
        return await self._call("GET", "/version", "get server version")

    async def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return await self._call("GET", rt.path(namespace, name), f"get {rt.kind} {namespace}/{name}")

    async def create(self, rt: ResourceType, obj: Obj) -> Obj:
        ns = str((obj.get("metadata") or {}).get("namespace") or "") or None
        name = (obj.get("metadata") or {}).get("name", "")
        return await self._call("POST", rt.path(ns), f"create {rt.kind} {ns or ''}/{name}", body=obj)

    async def create_subresource(self, rt: ResourceType, namespace: str, name: str, subresource: str, body: Obj) -> Obj:
        """POST to an object's subresource (`pods/<name>/eviction`); returns the answer (often a Status)."""
        what = f"create {rt.kind} {namespace}/{name} {subresource}"
        return await self._call("POST", rt.path(namespace, name, subresource), what, body=body)

    async def patch(
        self, rt: ResourceType, namespace: str, name: str, patch: Obj, *, subresource: str | None = None
    ) -> Obj:
        """JSON merge patch of the object (or of its `status` subresource); returns the patched object."""
        data = await self._send(
            *self._patch_args(rt, namespace, name, subresource), body=patch, content_type=MERGE_PATCH
        )
        doc = fastjson.loads(data) if data else {}
        return doc if isinstance(doc, dict) else {}

    async def patch_no_result(
        self, rt: ResourceType, namespace: str, name: str, patch: Obj, *, subresource: str | None = None
    ) -> None:
        """As `patch`, for callers that do not use the patched object: the answer is not decoded."""
        await self._send(*self._patch_args(rt, namespace, name, subresource), body=patch, content_type=MERGE_PATCH)

    async def patch_status(self, rt: ResourceType, namespace: str, name: str, status: Obj) -> bool:
        """Merge `status` into the object's status subresource; False if the object is gone (nothing to report on)."""
        try:
            await self.patch_no_result(rt, namespace, name, {"status": status}, subresource="status")
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    @staticmethod
    def _patch_args(rt: ResourceType, namespace: str, name: str, subresource: str | None) -> tuple[str, str, str]:
        what = f"patch {rt.kind} {namespace}/{name}" + (f" {subresource}" if subresource else "")
        return "PATCH", rt.path(namespace, name, subresource), what

    async def delete(self, rt: ResourceType, namespace: str, name: str, *, uid: str | None = None) -> None:
        """Delete; with `uid`, only that incarnation of the object (a precondition)."""
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        await self._call("DELETE", rt.path(namespace, name), f"delete {rt.kind} {namespace}/{name}", body=body)
