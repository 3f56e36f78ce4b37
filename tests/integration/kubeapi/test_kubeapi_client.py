"""The emulated API through kubernetes-asyncio, as dpf-controller uses it."""

from __future__ import annotations

import json
from typing import Any, cast

import aiohttp
import pytest
from kubeapi_harness import DPU_API, DPU_CRD, GROUP, VERSION, dpu, watch_events
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dpfd.sim.kubeapi import KubeApiServer
from tests.waiting import eventually

# kubernetes-asyncio's annotations do not declare _content_type, which it accepts
MERGE: dict[str, Any] = {"_content_type": "application/merge-patch+json"}


def body(e: ApiException) -> dict[str, Any]:
    return dict(json.loads(e.body or b"{}"))


async def test_create_get_list_across_namespaces(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    for ns in ("default", "other"):
        await core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"ns": ns})
        )
    got = await core.read_namespaced_config_map("cfg", "other")
    assert got.data == {"ns": "other"}
    assert got.metadata.uid and got.metadata.creation_timestamp and int(got.metadata.resource_version) > 0

    everywhere = await core.list_config_map_for_all_namespaces()
    assert [(c.metadata.namespace, c.data["ns"]) for c in everywhere.items] == [
        ("default", "default"),
        ("other", "other"),
    ]
    only_default = await core.list_namespaced_config_map("default")
    assert [c.metadata.namespace for c in only_default.items] == ["default"]
    assert int(everywhere.metadata.resource_version) >= int(got.metadata.resource_version)

    namespaces = {n.metadata.name for n in (await core.list_namespace()).items}
    assert {"default", "kube-system", "dpf-operator-system", "other"} <= namespaces


async def test_list_pages_with_limit_and_continue(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for i in range(5):
        await core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}"))
        )
    names: list[str] = []
    more: dict[str, Any] = {}
    pages = 0
    while True:
        page = await core.list_namespaced_config_map("default", limit=2, **more)
        names += [c.metadata.name for c in page.items]
        pages += 1
        if not page.metadata._continue:
            break
        more = {"_continue": page.metadata._continue}
    assert names == ["c0", "c1", "c2", "c3", "c4"] and pages == 3


async def test_errors_are_status_objects(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as missing:
        await core.read_namespaced_config_map("nope", "default")
    assert missing.value.status == 404
    assert body(missing.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "configmaps"},
        "code": 404,
    }
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dup"))
    await core.create_namespaced_config_map("default", cm)
    with pytest.raises(ApiException) as dup:
        await core.create_namespaced_config_map("default", cm)
    assert dup.value.status == 409 and body(dup.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as no_ns:
        await core.create_namespaced_config_map("ghost", cm)
    assert no_ns.value.status == 404 and body(no_ns.value)["message"] == 'namespaces "ghost" not found'
    with pytest.raises(ApiException) as bad_name:
        await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="A_b")))
    assert bad_name.value.status == 422
    assert body(bad_name.value)["details"]["causes"][0]["field"] == "metadata.name"


async def test_watch_true_from_resource_version(with_dpu_crd: KubeApiServer, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    await custom.create_namespaced_custom_object(GROUP, VERSION, "default", "dpus", dpu("before", "n0"))
    listed = await custom.list_namespaced_custom_object(GROUP, VERSION, "default", "dpus")
    start = listed["metadata"]["resourceVersion"]

    await custom.create_namespaced_custom_object(GROUP, VERSION, "default", "dpus", dpu("a", "n1"))
    await custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "dpus", "a", {"spec": {"nodeName": "n2"}}, **MERGE
    )
    await custom.delete_namespaced_custom_object(GROUP, VERSION, "default", "dpus", "a")

    events = await watch_events(
        custom.list_namespaced_custom_object, GROUP, VERSION, "default", "dpus",
        resource_version=start, timeout_seconds=5, count=3,
    )  # fmt: skip
    seen = [(e["type"], e["object"]["metadata"]["name"], e["object"]["spec"]["nodeName"]) for e in events]
    # only what happened after the list's resourceVersion, in order
    assert seen == [("ADDED", "a", "n1"), ("MODIFIED", "a", "n2"), ("DELETED", "a", "n2")]


@pytest.mark.parametrize("flag", ["true", "True", "1"])
async def test_watch_flag_spellings_stream(kubeapi: KubeApiServer, flag: str) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{kubeapi.url}/api/v1/namespaces?watch={flag}&timeoutSeconds=1"
        async with http.get(url) as resp:
            first = json.loads(await resp.content.readline())
    assert first["type"] == "ADDED" and first["object"]["kind"] == "Namespace"


async def test_watch_gone_after_compaction(with_dpu_crd: KubeApiServer, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    listed = await custom.list_namespaced_custom_object(GROUP, VERSION, "default", "dpus")
    old = listed["metadata"]["resourceVersion"]
    await custom.create_namespaced_custom_object(GROUP, VERSION, "default", "dpus", dpu("x", "n1"))
    await with_dpu_crd.compact()

    with pytest.raises(ApiException) as gone:
        await watch_events(
            custom.list_namespaced_custom_object, GROUP, VERSION, "default", "dpus",
            resource_version=old, timeout_seconds=2, count=1,
        )  # fmt: skip
    assert gone.value.status == 410
    assert "too old resource version" in str(gone.value.reason)

    # a fresh list gives a resourceVersion to watch from again (what a re-listing controller does)
    fresh = await custom.list_namespaced_custom_object(GROUP, VERSION, "default", "dpus")
    await custom.create_namespaced_custom_object(GROUP, VERSION, "default", "dpus", dpu("y", "n2"))
    events = await watch_events(
        custom.list_namespaced_custom_object, GROUP, VERSION, "default", "dpus",
        resource_version=fresh["metadata"]["resourceVersion"], timeout_seconds=5, count=1,
    )  # fmt: skip
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "y")]


async def test_event_window_bounds_resumable_watches() -> None:
    server = KubeApiServer(event_window=3)
    await server.start()
    try:
        objs = [await server.apply_object({"apiVersion": "v1", "kind": "ConfigMap",
                                           "metadata": {"name": f"c{i}"}}) for i in range(5)]  # fmt: skip
        rvs = [int(o["metadata"]["resourceVersion"]) for o in objs]
        async with aiohttp.ClientSession() as http:
            base = f"{server.url}/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1"
            async with http.get(f"{base}&resourceVersion={rvs[0]}") as resp:
                err = json.loads(await resp.content.readline())
            assert err["type"] == "ERROR"
            assert (err["object"]["code"], err["object"]["reason"]) == (410, "Expired")
            async with http.get(f"{base}&resourceVersion={rvs[2]}") as resp:
                names = [json.loads(await resp.content.readline())["object"]["metadata"]["name"] for _ in range(2)]
            assert names == ["c3", "c4"]
    finally:
        await server.stop()


async def test_update_conflict_on_stale_resource_version(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    coord = client.CoordinationV1Api(api)
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="leader"), spec=client.V1LeaseSpec(holder_identity="a"))
    created = await coord.create_namespaced_lease("default", lease)
    created.spec.holder_identity = "b"
    updated = await coord.replace_namespaced_lease("leader", "default", created)
    assert updated.spec.holder_identity == "b"
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)

    created.spec.holder_identity = "c"  # still carries the first resourceVersion
    with pytest.raises(ApiException) as stale:
        await coord.replace_namespaced_lease("leader", "default", created)
    assert stale.value.status == 409
    status = body(stale.value)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "leader": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert (await coord.read_namespaced_lease("leader", "default")).spec.holder_identity == "b"


async def test_merge_json_and_strategic_patches(with_dpu_crd: KubeApiServer, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    obj = dpu("p", "n1", extra={"keep": 1, "drop": 2})
    obj["metadata"]["labels"] = {"a": "1"}
    await custom.create_namespaced_custom_object(GROUP, VERSION, "default", "dpus", obj)

    merged = await custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "dpus", "p",
        {"metadata": {"labels": {"b": "2"}}, "spec": {"extra": {"drop": None, "new": 3}}}, **MERGE,
    )  # fmt: skip
    assert merged["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert merged["spec"]["extra"] == {"keep": 1, "new": 3}

    patched = await custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", "dpus", "p",
        [{"op": "test", "path": "/spec/nodeName", "value": "n1"},
         {"op": "replace", "path": "/spec/nodeName", "value": "n9"},
         {"op": "remove", "path": "/metadata/labels/a"}],
    )  # fmt: skip
    assert patched["spec"]["nodeName"] == "n9" and patched["metadata"]["labels"] == {"b": "2"}

    with pytest.raises(ApiException) as failed:
        await custom.patch_namespaced_custom_object(
            GROUP, VERSION, "default", "dpus", "p", [{"op": "test", "path": "/spec/nodeName", "value": "n1"}]
        )
    assert failed.value.status == 422

    with pytest.raises(ApiException) as stale:  # a resourceVersion in a patch is a precondition
        await custom.patch_namespaced_custom_object(
            GROUP, VERSION, "default", "dpus", "p", {"metadata": {"resourceVersion": "1"}}, **MERGE
        )
    assert stale.value.status == 409

    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="s"),
                                                                           data={"a": "1", "b": "2"}))  # fmt: skip
    # kubernetes-asyncio sends dict patches of built-ins as strategic merge patches
    cm = await core.patch_namespaced_config_map("s", "default", {"data": {"b": None, "c": "3"}, "$retainKeys": []})
    assert cm.data == {"a": "1", "c": "3"}


async def test_generation_and_status_subresource(with_dpu_crd: KubeApiServer, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    args = (GROUP, VERSION, "default", "dpus")
    created = await custom.create_namespaced_custom_object(*args, {**dpu("g", "n1"), "status": {"phase": "Sneaky"}})
    assert created["metadata"]["generation"] == 1
    assert "status" not in created  # status is the status subresource's: ignored on create
    assert created["spec"]["bfb"] == "bf-bundle"  # the CRD schema's default

    labelled = await custom.patch_namespaced_custom_object(*args, "g", {"metadata": {"labels": {"x": "y"}}}, **MERGE)
    assert labelled["metadata"]["generation"] == 1  # metadata changes do not bump generation

    status = await custom.patch_namespaced_custom_object_status(
        *args, "g", {"status": {"phase": "Ready"}, "spec": {"nodeName": "ignored"}}, **MERGE
    )
    assert status["status"] == {"phase": "Ready"} and status["spec"]["nodeName"] == "n1"
    assert status["metadata"]["generation"] == 1

    spec = await custom.patch_namespaced_custom_object(
        *args, "g", {"spec": {"nodeName": "n2"}, "status": {"phase": "Ignored"}}, **MERGE
    )
    assert spec["metadata"]["generation"] == 2 and spec["status"] == {"phase": "Ready"}

    # a write that changes nothing does not create a new resourceVersion
    again = await custom.patch_namespaced_custom_object(*args, "g", {"spec": {"nodeName": "n2"}}, **MERGE)
    assert again["metadata"]["resourceVersion"] == spec["metadata"]["resourceVersion"]

    replaced = await custom.replace_namespaced_custom_object_status(*args, "g", {**spec, "status": {"phase": "Error"}})
    assert replaced["status"] == {"phase": "Error"} and replaced["metadata"]["generation"] == 2
    async with aiohttp.ClientSession() as http:  # ConfigMaps have no status subresource
        await client.CoreV1Api(api).create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
        )
        async with http.get(f"{with_dpu_crd.url}/api/v1/namespaces/default/configmaps/x/status") as resp:
            assert resp.status == 404


async def test_label_and_field_selectors(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    labels = {"a": {"tier": "db", "env": "prod"}, "b": {"tier": "web", "env": "prod"},
              "c": {"tier": "web"}, "d": {}}  # fmt: skip
    for name, lbl in labels.items():
        await core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=lbl))
        )

    async def names(**kw: Any) -> list[str]:
        return [c.metadata.name for c in (await core.list_namespaced_config_map("default", **kw)).items]

    assert await names(label_selector="tier=web") == ["b", "c"]
    assert await names(label_selector="tier==web,env=prod") == ["b"]
    assert await names(label_selector="tier!=web") == ["a", "d"]
    assert await names(label_selector="tier in (db, web),env") == ["a", "b"]
    assert await names(label_selector="tier notin (db)") == ["b", "c", "d"]
    assert await names(label_selector="env") == ["a", "b"]
    assert await names(label_selector="!env") == ["c", "d"]
    assert await names(field_selector="metadata.name=c") == ["c"]
    assert await names(field_selector="metadata.name!=c,metadata.namespace=default") == ["a", "b", "d"]
    with pytest.raises(ApiException) as bad:
        await names(label_selector="tier in db")
    assert bad.value.status == 400

    for pod, node in (("p1", "host-1"), ("p2", "host-2")):
        await core.create_namespaced_pod(
            "default",
            client.V1Pod(metadata=client.V1ObjectMeta(name=pod),
                         spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="c")])),
        )  # fmt: skip
    pods = await core.list_pod_for_all_namespaces(field_selector="spec.nodeName=host-2")
    assert [p.metadata.name for p in pods.items] == ["p2"]
    assert pods.items[0].status.phase == "Pending"

    # a watch with a selector sees an object leave it as DELETED
    since = (await core.list_namespaced_config_map("default")).metadata.resource_version
    await core.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"tier": "db"}}})
    events = await watch_events(core.list_namespaced_config_map, "default", label_selector="tier=web",
                                resource_version=since, timeout_seconds=5, count=1)  # fmt: skip
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("DELETED", "b")]


async def test_finalizers_and_deletion_timestamp(with_dpu_crd: KubeApiServer, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    args = (GROUP, VERSION, "default", "dpus")
    obj = dpu("f", "n1")
    obj["metadata"]["finalizers"] = ["provisioning.dpu.nvidia.com/dpu-protection"]
    created = await custom.create_namespaced_custom_object(*args, obj)

    deleting = await custom.delete_namespaced_custom_object(*args, "f")
    assert deleting["metadata"]["deletionTimestamp"]
    still = await custom.get_namespaced_custom_object(*args, "f")
    assert still["metadata"]["finalizers"] == ["provisioning.dpu.nvidia.com/dpu-protection"]

    with pytest.raises(ApiException) as no_new:
        await custom.patch_namespaced_custom_object(
            *args, "f", {"metadata": {"finalizers": ["a", "provisioning.dpu.nvidia.com/dpu-protection"]}},
            **MERGE,
        )  # fmt: skip
    assert no_new.value.status == 422

    await custom.patch_namespaced_custom_object(*args, "f", {"metadata": {"finalizers": None}}, **MERGE)
    with pytest.raises(ApiException) as gone:
        await custom.get_namespaced_custom_object(*args, "f")
    assert gone.value.status == 404

    events = await watch_events(custom.list_namespaced_custom_object, *args, count=2,
                                resource_version=created["metadata"]["resourceVersion"], timeout_seconds=5)  # fmt: skip
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]


def _owned_by(owner: client.V1ConfigMap, name: str, *, block: bool = False) -> client.V1ConfigMap:
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name=owner.metadata.name,
                                  uid=owner.metadata.uid, block_owner_deletion=block)  # fmt: skip
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, owner_references=[ref]))


async def _exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        await core.read_namespaced_config_map(name, "default")
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


async def test_owner_reference_cascade(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    owner = await core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="o"))
    )
    child = await core.create_namespaced_config_map("default", _owned_by(owner, "child"))
    await core.create_namespaced_config_map("default", _owned_by(child, "grandchild"))
    other = await core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="o2"))
    )
    two_owners = _owned_by(owner, "shared")
    two_owners.metadata.owner_references.append(_owned_by(other, "x").metadata.owner_references[0])
    await core.create_namespaced_config_map("default", two_owners)

    await core.delete_namespaced_config_map("o", "default")  # background propagation
    await eventually(lambda: _not(_exists(core, "grandchild")), what="the cascade to reach the grandchild")
    assert not await _exists(core, "child")
    assert await _exists(core, "shared")  # one owner is still there

    # orphan: dependents stay, without the owner reference
    await core.create_namespaced_config_map("default", _owned_by(other, "orphan-me"))
    await core.delete_namespaced_config_map("o2", "default", propagation_policy="Orphan")
    await eventually(lambda: _not(_exists(core, "o2")), what="the orphaning owner to go")
    kept = await core.read_namespaced_config_map("orphan-me", "default")
    assert not kept.metadata.owner_references


async def test_foreground_deletion_waits_for_blocking_dependents(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    owner = await core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="o"))
    )
    dep = _owned_by(owner, "dep", block=True)
    dep.metadata.finalizers = ["test/hold"]
    await core.create_namespaced_config_map("default", dep)

    await core.delete_namespaced_config_map("o", "default", propagation_policy="Foreground")
    held = await core.read_namespaced_config_map("o", "default")
    assert held.metadata.deletion_timestamp and "foregroundDeletion" in held.metadata.finalizers
    await eventually(lambda: _deleting(core, "dep"), what="the dependent to be deleting")
    assert await _exists(core, "o")  # its blocking dependent is still there

    await core.patch_namespaced_config_map("dep", "default", {"metadata": {"finalizers": None}})
    await eventually(lambda: _not(_exists(core, "o")), what="the owner to go once its dependent is gone")


async def _not(value: Any) -> bool:
    return not await value


async def _deleting(core: client.CoreV1Api, name: str) -> bool:
    return bool((await core.read_namespaced_config_map(name, "default")).metadata.deletion_timestamp)


async def test_namespace_deletion_removes_its_content(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="temp")))
    await core.create_namespaced_config_map("temp", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
    await core.delete_namespace("temp")

    async def namespace_gone() -> bool:
        try:
            await core.read_namespace("temp")
        except ApiException as e:
            return e.status == 404
        return False

    await eventually(namespace_gone, what="namespace temp to be deleted")
    assert (await core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=temp")).items == []
    with pytest.raises(ApiException) as protected:
        await core.delete_namespace("default")
    assert protected.value.status == 403


async def test_crd_registration_serves_the_kind_at_once(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as before:
        await custom.list_namespaced_custom_object(GROUP, VERSION, "default", "dpus")
    assert before.value.status == 404

    ext = client.ApiextensionsV1Api(api)
    crd = await ext.create_custom_resource_definition(cast(Any, DPU_CRD))
    established = {c.type: c.status for c in crd.status.conditions}
    assert established == {"NamesAccepted": "True", "Established": "True"}

    made = await custom.create_namespaced_custom_object(GROUP, VERSION, "default", "dpus", dpu("now", "n1"))
    assert made["metadata"]["generation"] == 1

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{kubeapi.url}/apis/{GROUP}/{VERSION}") as resp:
            resources = {r["name"]: r for r in (await resp.json())["resources"]}
        assert resources["dpus"]["shortNames"] == ["dpu"] and resources["dpus"]["kind"] == "DPU"
        assert "dpus/status" in resources
        aggregated_accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        async with http.get(f"{kubeapi.url}/apis", headers={"Accept": aggregated_accept}) as resp:
            assert resp.headers["Content-Type"] == aggregated_accept
            groups = {g["metadata"]["name"] for g in (await resp.json())["items"]}
        assert GROUP in groups

    await ext.delete_custom_resource_definition(f"dpus.{GROUP}")
    with pytest.raises(ApiException) as after:
        await custom.list_namespaced_custom_object(GROUP, VERSION, "default", "dpus")
    assert after.value.status == 404
    await ext.create_custom_resource_definition(cast(Any, DPU_CRD))
    again = await custom.list_namespaced_custom_object(GROUP, VERSION, "default", "dpus")
    assert again["items"] == []  # the instances went with the CRD


async def test_bookmarks_carry_the_current_resource_version(kubeapi: KubeApiServer) -> None:
    await kubeapi.apply_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}})
    url = f"{kubeapi.url}/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=5"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        added = json.loads(await resp.content.readline())
        bookmark = json.loads(await resp.content.readline())
    assert added["type"] == "ADDED"
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["resourceVersion"] == str(kubeapi.store.rv)


async def test_in_process_interface_shares_semantics_and_events(with_dpu_crd: KubeApiServer,
                                                                api: client.ApiClient) -> None:  # fmt: skip
    server = with_dpu_crd
    custom = client.CustomObjectsApi(api)
    listed = await custom.list_namespaced_custom_object(GROUP, VERSION, "default", "dpus")

    first = await server.apply_object(dpu("ip", "n1"))
    second = await server.apply_object({**dpu("ip", "n2"), "metadata": {"name": "ip", "labels": {"k": "v"}}})
    assert second["metadata"]["generation"] == 2 and second["metadata"]["labels"] == {"k": "v"}
    await server.apply_status({"apiVersion": DPU_API, "kind": "DPU", "metadata": {"name": "ip"},
                               "status": {"phase": "Ready"}})  # fmt: skip
    assert [o["status"]["phase"] for o in server.objects(DPU_API, "DPU")] == ["Ready"]
    assert server.objects(DPU_API, "DPU", namespace="other") == []
    assert first["metadata"]["uid"] == second["metadata"]["uid"]

    events = await watch_events(custom.list_namespaced_custom_object, GROUP, VERSION, "default", "dpus", count=3,
                                resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=5)  # fmt: skip
    seen = [(e["type"], e["object"]["spec"]["nodeName"], e["object"].get("status")) for e in events]
    assert seen == [("ADDED", "n1", None), ("MODIFIED", "n2", None), ("MODIFIED", "n2", {"phase": "Ready"})]
