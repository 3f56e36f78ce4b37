"""A small `kubectl apply` for dpf-sim: create-or-update objects over the Kubernetes REST API.

It resolves kinds through the server's discovery documents, so it works for built-in kinds and for CRDs
registered a moment earlier.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml


class ApplyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def collection_path(self, namespace: str | None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


class RestApplier:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._resources: dict[tuple[str, str], Resource] = {}

    async def _discover(self, api_version: str) -> None:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        async with self.session.get(self.base_url + path) as resp:
            if resp.status == 404:
                return
            if resp.status != 200:
                raise ApplyError(f"discovery of {api_version} failed: HTTP {resp.status}: {await resp.text()}")
            doc = await resp.json()
        for r in doc.get("resources", []):
            if "/" in r["name"]:
                continue  # subresources
            self._resources[(api_version, r["kind"])] = Resource(api_version, r["kind"], r["name"], r["namespaced"])

    async def resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            await self._discover(api_version)
        if key not in self._resources:
            raise ApplyError(f"the server does not serve {kind} in {api_version}")
        return self._resources[key]

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the object, or replace its spec/metadata if it exists (status is left to controllers)."""
        res = await self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            meta.setdefault("namespace", "default")
        ns = meta.get("namespace") if res.namespaced else None
        url = self.base_url + res.collection_path(ns)
        async with self.session.post(url, json=obj) as resp:
            if resp.status in (200, 201):
                return dict(await resp.json())
            body = await resp.text()
            if resp.status != 409:
                raise ApplyError(_status_message(obj, body, resp.status))
        item_url = f"{url}/{meta['name']}"
        async with self.session.patch(
            item_url, data=json.dumps(obj), headers={"Content-Type": "application/merge-patch+json"}
        ) as resp:
            if resp.status != 200:
                raise ApplyError(_status_message(obj, await resp.text(), resp.status))
            return dict(await resp.json())


def _status_message(obj: dict[str, Any], body: str, code: int) -> str:
    try:
        message = json.loads(body).get("message", body)
    except ValueError:
        message = body
    meta = obj.get("metadata", {})
    name = f"{meta.get('namespace') + '/' if meta.get('namespace') else ''}{meta.get('name')}"
    return f"{obj.get('kind')} {name}: HTTP {code}: {message}"


def load_manifests(directory: Path) -> list[dict[str, Any]]:
    """All objects in the *.yaml / *.yml files of `directory`, files in name order."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise ApplyError(f"no *.yaml files in {directory}")
    objects: list[dict[str, Any]] = []
    for f in files:
        try:
            docs = list(yaml.safe_load_all(f.read_text()))
        except yaml.YAMLError as e:
            raise ApplyError(f"{f}: {e}") from e
        objects.extend(d for d in docs if isinstance(d, dict) and d)
    return objects


def apply_order(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespaces first, then Secrets/ConfigMaps and Nodes, then the rest: what the others refer to comes first."""
    rank = {"Namespace": 0, "Secret": 1, "ConfigMap": 1, "Node": 2}
    return sorted(objects, key=lambda o: rank.get(str(o.get("kind")), 3))
