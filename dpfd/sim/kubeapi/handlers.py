"""HTTP routes of the emulated API server: discovery, OpenAPI, and the REST verbs on every resource."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from multidict import MultiMapping

from dpfd import fastjson
from dpfd.sim import bootstrap_tokens as bootstrap
from dpfd.sim.kubeapi import discovery, errors, protobuf, tables
from dpfd.sim.kubeapi.auth import Authenticator, User, verb_of
from dpfd.sim.kubeapi.core import PATCH_TYPES, ApiCore
from dpfd.sim.kubeapi.encoding import dumps as _dumps
from dpfd.sim.kubeapi.encoding import event_object
from dpfd.sim.kubeapi.errors import ApiError
from dpfd.sim.kubeapi.negotiation import METADATA, TABLE, Representation, negotiate, partial_metadata, present
from dpfd.sim.kubeapi.openapi import OpenApiDocuments
from dpfd.sim.kubeapi.resources import ResourceType
from dpfd.sim.kubeapi.sa_tokens import ServiceAccountTokens
from dpfd.sim.kubeapi.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from dpfd.sim.kubeapi.store import Watcher
from dpfd.sim.kubeapi.watch import WatchRequest, WatchStream, server_timeout

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Query = MultiMapping[str]
TRUE = ("true", "True", "1")
JSON = "application/json"
MAX_BODY = 64 * 1024 * 1024  # bytes of a request body
# Kinds whose delete answers with the object (the rest answer with a Status), as in the real API server.
RETURNS_DELETED_OBJECT = {("", "pods"), ("", "namespaces"), ("", "nodes")}
USER = web.RequestKey("dpf-sim.user", User)  # where dispatch keeps the request's authenticated identity
CLUSTER_INFO = (("", "configmaps"), bootstrap.CLUSTER_INFO_NAMESPACE, bootstrap.CLUSTER_INFO_NAME)


def json_response(obj: Any, status: int = 200, content_type: str = JSON) -> web.Response:
    return body_response(_dumps(obj), status, content_type)


def body_response(body: bytes, status: int = 200, content_type: str = JSON) -> web.Response:
    return web.Response(body=body, status=status, headers={"Content-Type": content_type})


def error_response(e: ApiError) -> web.Response:
    return json_response(e.status(), e.code)


def _success(rt: ResourceType, obj: Obj, code: int = 200) -> Obj:
    meta = obj.get("metadata", {})
    details = {"name": meta.get("name", ""), "kind": rt.plural, "uid": meta.get("uid", "")}
    if rt.group:
        details["group"] = rt.group
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
        "code": code,
    }


def _selectors(q: Query) -> tuple[LabelSelector | None, FieldSelector | None]:
    try:
        return parse_label_selector(q.get("labelSelector", "")), parse_field_selector(q.get("fieldSelector", ""))
    except SelectorError as e:
        raise errors.bad_request(str(e)) from e


def _continue_key(token: str) -> tuple[str, str]:
    try:
        ns, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(ns), str(name)
    except (ValueError, binascii.Error, TypeError) as e:
        raise errors.bad_request(f"invalid continue token {token!r}") from e


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])


class ApiHandlers:
    def __init__(
        self,
        core: ApiCore,
        openapi: OpenApiDocuments,
        *,
        bookmark_interval: float,
        auth: Authenticator | None = None,
        tokens: ServiceAccountTokens | None = None,
    ) -> None:
        self.core = core
        self.auth = auth  # None: plain HTTP, everyone may do everything
        self.tokens = tokens  # None: no TokenRequest subresource
        self.registry = core.registry
        self.store = core.store
        self.openapi = openapi
        self.bookmark_interval = bookmark_interval

    def server(self) -> web.Server:
        """aiohttp's low-level server: every request goes straight to `dispatch` (no router, no middleware:
        they cost a good part of a small request). Must be made inside the running event loop."""
        loop = asyncio.get_running_loop()

        def make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY)

        # handler_cancellation ends a watch as soon as its client goes away
        return web.Server(self.dispatch, request_factory=make_request, handler_cancellation=True, access_log=None)

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            if request.headers.get("Expect", "").lower() == "100-continue":
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # what aiohttp's router did
            if self.auth is not None:
                request[USER] = self.auth.authenticate(request.headers)
            return await self._route(request)
        except ApiError as e:
            return error_response(e)
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path_qs)
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {e}"))

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        head = segs[0] if segs else ""
        accept = request.headers.get("Accept", "")
        core = head == "api"
        is_resource = (core and len(segs) >= 3) or (head == "apis" and len(segs) >= 4)
        if self.auth is not None and not is_resource:
            self.auth.authorize_path(request[USER], request.method, request.path)
        if head == "api" or head == "apis":
            if request.method == "GET":
                doc = self._discovery(segs, accept)
                if doc is not None:
                    return doc
            if core and len(segs) >= 2:
                return await self._resource(request, "", segs[1], segs[2:])
            if not core and len(segs) >= 4:
                return await self._resource(request, segs[1], segs[2], segs[3:])
            raise errors.path_not_found()
        if request.method != "GET":
            raise errors.method_not_allowed(request.method)
        if head == "version":
            return json_response(discovery.VERSION_INFO)
        if head in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if head == "openapi" and len(segs) >= 2 and segs[1] == "v3":
            body = self.openapi.index() if len(segs) == 2 else self.openapi.document("/".join(segs[2:]))
            if body is None:
                raise errors.path_not_found()
            return web.Response(body=body, headers={"Content-Type": JSON})
        if not segs:
            return json_response({"paths": ["/api", "/api/v1", "/apis", "/openapi/v3", "/version", "/healthz"]})
        raise errors.path_not_found()

    def _discovery(self, segs: list[str], accept: str) -> web.Response | None:
        if segs == ["api"]:
            if discovery.wants_aggregated(accept):
                return json_response(
                    discovery.aggregated(self.registry, core=True), content_type=discovery.AGGREGATED_V2
                )
            return json_response(discovery.api_versions())
        if segs == ["apis"]:
            if discovery.wants_aggregated(accept):
                return json_response(
                    discovery.aggregated(self.registry, core=False), content_type=discovery.AGGREGATED_V2
                )
            return json_response(discovery.api_group_list(self.registry))
        doc = None
        if segs[0] == "api" and len(segs) == 2:
            doc = discovery.api_resource_list(self.registry, "", segs[1])
        elif segs[0] == "apis" and len(segs) == 2:
            doc = discovery.api_group(self.registry, segs[1])
        elif segs[0] == "apis" and len(segs) == 3:
            doc = discovery.api_resource_list(self.registry, segs[1], segs[2])
        else:
            return None
        if doc is None:
            raise errors.path_not_found()
        return json_response(doc)

    async def _resource(
        self, request: web.BaseRequest, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        legacy_watch = bool(rest) and rest[0] == "watch"
        if legacy_watch:
            rest = rest[1:]
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            scoped = self.registry.by_path(group, version, rest[2])
            if scoped is not None and scoped.namespaced:
                namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise errors.path_not_found()
        rt = self.registry.by_path(group, version, rest[0])
        if rt is None:
            raise errors.path_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (rt.namespaced and name is not None and namespace is None) or (not rt.namespaced and namespace):
            raise errors.path_not_found()
        if sub is not None and not (
            (sub == "status" and rt.status_subresource)
            or (sub == "eviction" and rt.key == ("", "pods"))
            or (sub == "token" and rt.key == ("", "serviceaccounts") and self.tokens is not None)
        ):
            raise errors.path_not_found()
        q = request.query
        rep = negotiate(request.headers.get("Accept", ""))
        method = request.method
        if sub == "token" and method != "POST":
            raise errors.method_not_allowed(method)
        if self.auth is not None:
            watch = legacy_watch or q.get("watch") in TRUE
            self.auth.authorize_resource(
                request[USER], verb_of(method, name is not None, watch), rt, namespace, name, sub
            )
        if method == "GET" and name is None:
            if legacy_watch or q.get("watch") in TRUE:
                return await self._watch(request, rt, version, namespace, rep)
            return self._list(rt, version, namespace, q, rep)
        if legacy_watch:
            raise errors.method_not_allowed(method)
        ns = namespace or ""
        dry_run = "All" in q.getall("dryRun", [])
        if method == "GET" and name is not None:
            obj = self.core.get(rt, ns, name)
            if self.auth is not None and (rt.key, ns, name) == CLUSTER_INFO and sub is None:
                obj = self.auth.signed_cluster_info(obj)
            return self._respond(rt, version, obj, rep, q)
        if method == "POST" and name is None:
            obj = self.core.create(rt, ns, await self._json_body(request), dry_run=dry_run)
            return self._respond(rt, version, obj, rep, q, status=201)
        if method == "POST" and sub == "eviction" and name is not None:
            return await self._evict(request, rt, ns, name, dry_run)
        if method == "POST" and sub == "token" and name is not None and self.tokens is not None:
            return json_response(self.tokens.issue(rt, ns, name, await self._json_body(request)), status=201)
        if method == "PUT" and name is not None:
            obj = self.core.update(rt, ns, name, await self._json_body(request), subresource=sub, dry_run=dry_run)
            return self._respond(rt, version, obj, rep, q)
        if method == "PATCH" and name is not None:
            content_type = request.content_type
            if content_type not in PATCH_TYPES:
                raise errors.unsupported_media_type(content_type)
            obj, created = self.core.patch(
                rt,
                ns,
                name,
                content_type,
                await request.read(),
                subresource=sub,
                dry_run=dry_run,
                field_manager=q.get("fieldManager"),
            )
            return self._respond(rt, version, obj, rep, q, status=201 if created else 200)
        if method == "DELETE" and sub is None:
            return await self._delete(request, rt, version, namespace, name, rep, dry_run)
        raise errors.method_not_allowed(method)

    async def _json_body(self, request: web.BaseRequest) -> Any:
        content_type = request.content_type
        raw = await request.read()
        if content_type == protobuf.PROTOBUF:
            try:
                return protobuf.decode(raw)
            except (protobuf.ProtobufError, UnicodeDecodeError) as e:
                raise errors.unsupported_media_type(f"{content_type} ({e})") from e
        if content_type not in (JSON, "application/yaml", "*/*", "application/octet-stream", ""):
            raise errors.unsupported_media_type(content_type)
        try:
            return fastjson.loads(raw) if raw else None
        except ValueError as e:
            raise errors.bad_request(f"the body of the request could not be decoded as JSON: {e}") from e

    def _respond(
        self, rt: ResourceType, version: str, obj: Obj, rep: Representation, q: Query, status: int = 200
    ) -> web.Response:
        if rep == TABLE:
            cols = tables.columns_for(rt, version)
            body = tables.table(
                cols,
                [obj],
                obj["metadata"].get("resourceVersion", ""),
                include_object=q.get("includeObject", "Metadata"),
            )
            return json_response(body, status)
        ev = self.store.event_of(obj)
        if ev is not None:  # a write: its watchers send the same bytes
            return body_response(event_object(ev, rt, version, rep), status)
        if rep == METADATA:
            return json_response(partial_metadata(obj), status)
        return json_response(present(rt, version, obj), status)

    def _list(
        self, rt: ResourceType, version: str, namespace: str | None, q: Query, rep: Representation
    ) -> web.Response:
        labels, fields = _selectors(q)
        items = self.core.list_objects(rt, namespace, labels, fields)
        rv = str(self.store.rv)
        meta: Obj = {"resourceVersion": rv}
        if token := q.get("continue"):
            after = _continue_key(token)
            items = [o for o in items if _key(o) > after]
        limit = int(q.get("limit") or 0)
        if 0 < limit < len(items):
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
            meta["continue"] = base64.urlsafe_b64encode(_dumps(list(_key(items[-1])))).decode()
        if rep == TABLE:
            body = tables.table(
                tables.columns_for(rt, version), items, rv, include_object=q.get("includeObject", "Metadata")
            )
            if "continue" in meta:
                body["metadata"].update(meta)
            return json_response(body)
        if rep == METADATA:
            return json_response(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": [partial_metadata(o) for o in items],
                }
            )
        return json_response(
            {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version(version),
                "metadata": meta,
                "items": [present(rt, version, o) for o in items],
            }
        )

    async def _watch(
        self, request: web.BaseRequest, rt: ResourceType, version: str, namespace: str | None, rep: Representation
    ) -> web.StreamResponse:
        q = request.query
        labels, fields = _selectors(q)
        rv = q.get("resourceVersion", "")
        try:
            since = None if rv in ("", "0") else int(rv)
        except ValueError as e:
            raise errors.bad_request(f"invalid resourceVersion {rv!r}") from e
        req = WatchRequest(
            rt=rt,
            version=version,
            watcher=Watcher(rt.key, namespace if rt.namespaced else None, labels, fields),
            since=since,
            send_initial_events=q.get("sendInitialEvents") in TRUE,
            bookmarks=q.get("allowWatchBookmarks") in TRUE,
            timeout=server_timeout(q.get("timeoutSeconds")),
            representation=rep,
            include_object=q.get("includeObject", "Metadata"),
        )
        return await WatchStream(self.store, req, self.bookmark_interval).serve(request)

    async def _delete_options(self, request: web.BaseRequest) -> Obj:
        opts: Obj = {}
        raw = await request.read()
        if raw.strip():
            try:
                opts = json.loads(raw)
            except ValueError as e:
                raise errors.bad_request(f"the DeleteOptions could not be decoded: {e}") from e
            if not isinstance(opts, dict):
                raise errors.bad_request("DeleteOptions must be a JSON object")
        q = request.query
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        orphan = q.get("orphanDependents", opts.get("orphanDependents"))
        if "propagationPolicy" not in opts and orphan in (True, *TRUE):
            opts["propagationPolicy"] = "Orphan"
        if "All" in q.getall("dryRun", []):
            opts["dryRun"] = ["All"]
        return opts

    async def _delete(
        self,
        request: web.BaseRequest,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str | None,
        rep: Representation,
        dry_run: bool,
    ) -> web.Response:
        opts = await self._delete_options(request)
        dry_run = dry_run or "All" in (opts.get("dryRun") or [])
        policy = opts.get("propagationPolicy")
        if name is None:
            labels, fields = _selectors(request.query)
            gone = self.core.delete_collection(rt, namespace, labels, fields, propagation=policy, dry_run=dry_run)
            return json_response(
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version(version),
                    "metadata": {"resourceVersion": str(self.store.rv)},
                    "items": [present(rt, version, o) for o in gone],
                }
            )
        obj = self.core.delete(
            rt,
            namespace or "",
            name,
            propagation=policy,
            preconditions=opts.get("preconditions"),
            dry_run=dry_run,
        )
        still_there = bool(obj["metadata"].get("deletionTimestamp"))
        if still_there or rt.crd_name is not None or rt.key in RETURNS_DELETED_OBJECT:
            return self._respond(rt, version, obj, rep, request.query, status=200)
        return json_response(_success(rt, obj))

    async def _evict(
        self, request: web.BaseRequest, rt: ResourceType, ns: str, name: str, dry_run: bool
    ) -> web.Response:
        """The Eviction API: deletes the pod unless its PodDisruptionBudget forbids it (429)."""
        self.core.evict(rt, ns, name, await self._json_body(request), dry_run=dry_run)
        return json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
            status=201,
        )
