"""DPUDeployment against the emulated Kubernetes API: the generated DPUSets, DPUServices, DPUServiceInterfaces and
DPUServiceChain appear with DPF's names, labels and owner references; configuration changes reach them; the
prerequisites and resource fitting gate them; deletion goes chains, interfaces, services, then DPUSets, and
releases what the DPUDeployment consumed."""

from __future__ import annotations

from typing import Any

from dpudeployment_harness import Env, env

from tests.waiting import eventually

__all__ = ["env"]  # the fixture

NS = "dpf-operator-system"
SVC = "svc.dpu.nvidia.com/v1alpha1"
PROV = "provisioning.dpu.nvidia.com/v1alpha1"
OWNER = "svc.dpu.nvidia.com/owned-by-dpudeployment"
CONSUMED = "dpu.nvidia.com/consumed-by-dpudeployment-name"
FINALIZER = "dpu.nvidia.com/dpudeployment"
VERSION = "svc.dpu.nvidia.com/dpuservice-hbn-version"


def obj(api: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def bfb() -> dict[str, Any]:
    return obj(PROV, "BFB", "bf-bundle", {"url": "http://example.com/bf-bundle.bfb"})


def flavor(name: str = "hbn-flavor", cpu: str = "16") -> dict[str, Any]:
    return obj(PROV, "DPUFlavor", name, {
        "dpuResources": {"cpu": cpu, "memory": "16Gi"},
        "systemReservedResources": {"cpu": "4", "memory": "4Gi"},
    })  # fmt: skip


def template(name: str = "hbn-t", cpu: str = "2") -> dict[str, Any]:
    return obj(SVC, "DPUServiceTemplate", name, {
        "deploymentServiceName": "hbn",
        "helmChart": {"source": {"repoURL": "oci://example.com/charts", "chart": "hbn", "version": "1.0.0"},
                      "values": {"image": {"repo": "nvcr.io/hbn", "tag": "1"}}},
        "resourceRequirements": {"cpu": cpu, "memory": "1Gi"},
    })  # fmt: skip


def configuration(tag: str = "2") -> dict[str, Any]:
    return obj(SVC, "DPUServiceConfiguration", "hbn-c", {
        "deploymentServiceName": "hbn",
        "serviceConfiguration": {"helmChart": {"values": {"image": {"tag": tag}}},
                                 "serviceDaemonSet": {"labels": {"app": "hbn"}}},
        "interfaces": [{"name": "p0_if", "network": "mybrsfc"}],
    })  # fmt: skip


def deployment(suffix: str = "dpuset1", flavor_name: str = "hbn-flavor") -> dict[str, Any]:
    return obj(SVC, "DPUDeployment", "dd", {
        "dpus": {"bfb": "bf-bundle", "flavor": flavor_name,
                 "dpuSets": [{"nameSuffix": suffix,
                              "nodeSelector": {"matchLabels": {"feature.node.kubernetes.io/dpu-enabled": "true"}}}]},
        "services": {"hbn": {"serviceTemplate": "hbn-t", "serviceConfiguration": "hbn-c"}},
        "serviceChains": [{"ports": [{"service": {"name": "hbn", "interface": "p0_if"}},
                                     {"serviceInterface": {"matchLabels": {"uplink": "p0"}}}]}],
    })  # fmt: skip


def get(env: Env, api: str, kind: str, name: str) -> dict[str, Any] | None:
    return env.server.get_object(api, kind, name, NS)


def condition(env: Env, type_: str) -> dict[str, Any]:
    dd = get(env, SVC, "DPUDeployment", "dd") or {}
    return next((c for c in (dd.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


CHILDREN = [
    (PROV, "DPUSet", "dd-dpuset1"),
    (SVC, "DPUService", "dd-hbn"),
    (SVC, "DPUServiceInterface", "dd-hbn-p0-if"),
    (SVC, "DPUServiceChain", "dd"),
]


async def apply_all(env: Env, *objs: dict[str, Any]) -> None:
    for o in objs:
        await env.server.apply_object(o)


async def mark_ready(env: Env, api: str, kind: str, name: str) -> None:
    o = get(env, api, kind, name)
    assert o is not None
    cond = {"type": "Ready", "status": "True", "reason": "Success", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    await env.server.apply_status({**o, "status": {"conditions": [cond]}})


async def test_children_generated_updated_and_ready(env: Env) -> None:
    await apply_all(env, bfb(), flavor(), template(), configuration(), deployment())
    await eventually(lambda: all(get(env, *c) for c in CHILDREN), 10, "the four children")
    dd = get(env, SVC, "DPUDeployment", "dd")
    assert dd is not None and FINALIZER in dd["metadata"]["finalizers"]
    for api, kind, name in CHILDREN:
        child = get(env, api, kind, name)
        assert child is not None
        assert child["metadata"]["labels"][OWNER] == f"{NS}_dd", kind
        (ref,) = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("DPUDeployment", "dd",
                                                                             dd["metadata"]["uid"], True)  # fmt: skip
    svc = get(env, SVC, "DPUService", "dd-hbn")
    assert svc is not None
    assert svc["spec"]["serviceID"] == "dpudeployment_dd_hbn"
    assert svc["spec"]["helmChart"]["values"] == {"image": {"repo": "nvcr.io/hbn", "tag": "2"}}
    assert svc["spec"]["interfaces"] == ["dd-hbn-p0-if"]
    assert svc["spec"]["serviceDaemonSet"]["labels"] == {"app": "hbn"}
    dpuset = get(env, PROV, "DPUSet", "dd-dpuset1")
    assert dpuset is not None
    labels = dpuset["spec"]["dpuTemplate"]["spec"]["cluster"]["nodeLabels"]
    version = labels[VERSION]
    assert labels[OWNER] == f"{NS}_dd" and "svc.dpu.nvidia.com/dpuservicechain-version" in labels
    assert dpuset["spec"]["dpuTemplate"]["spec"]["bfb"] == {"name": "bf-bundle"}
    terms = svc["spec"]["serviceDaemonSet"]["nodeSelector"]["nodeSelectorTerms"]
    assert {"key": VERSION, "operator": "In", "values": [version]} in terms[0]["matchExpressions"]

    # What it consumes is marked, so it is not deleted from under it.
    for api, kind, name in ((PROV, "BFB", "bf-bundle"), (PROV, "DPUFlavor", "hbn-flavor"),
                            (SVC, "DPUServiceTemplate", "hbn-t"), (SVC, "DPUServiceConfiguration", "hbn-c")):  # fmt: skip
        dep = get(env, api, kind, name)
        assert dep is not None and dep["metadata"]["labels"][CONSUMED] == "dd", kind
        assert FINALIZER in dep["metadata"]["finalizers"], kind

    for type_ in ("PrerequisitesReady", "ResourceFittingReady", "DPUSetsReconciled", "DPUServicesReconciled",
                  "DPUServiceInterfacesReconciled", "DPUServiceChainsReconciled", "DPUSetsReady"):  # fmt: skip
        await eventually(lambda t=type_: condition(env, t).get("status") == "True", 10, type_)  # type: ignore[misc]
    pending = condition(env, "DPUServicesReady")
    assert pending["status"] == "False" and pending["message"] == f"Objects not ready: {NS}/dd-hbn"
    assert condition(env, "Ready")["status"] == "False"

    for api, kind, name in CHILDREN[1:]:
        await mark_ready(env, api, kind, name)
    ready = await eventually(lambda: condition(env, "Ready").get("status") == "True" and condition(env, "Ready"),
                             10, "Ready")  # fmt: skip
    assert ready["observedGeneration"] == dd["metadata"]["generation"]

    # A configuration change reaches the DPUService and moves its version label on the DPU Nodes.
    writes = env.work.writes
    await env.server.apply_object(configuration(tag="3"))

    def updated() -> bool:
        s, d = get(env, SVC, "DPUService", "dd-hbn"), get(env, PROV, "DPUSet", "dd-dpuset1")
        return bool(s and d and s["spec"]["helmChart"]["values"]["image"]["tag"] == "3"
                    and d["spec"]["dpuTemplate"]["spec"]["cluster"]["nodeLabels"][VERSION] != version)  # fmt: skip

    await eventually(updated, 10, "the new values and version label")
    await eventually(lambda: env.work.queue.idle(), 10, "work idle")
    assert env.work.writes > writes

    # A renamed DPUSet: the new one is created, the old one deleted.
    await env.server.apply_object(deployment(suffix="dpuset2"))
    await eventually(lambda: get(env, PROV, "DPUSet", "dd-dpuset2") and not get(env, PROV, "DPUSet", "dd-dpuset1"),
                     10, "the DPUSet renamed")  # fmt: skip

    # Nothing changes: a reconcile writes nothing.
    await eventually(lambda: env.work.queue.idle(), 10, "work idle")
    writes, processed = env.work.writes, env.work.queue.processed
    env.work.enqueue_all()
    await eventually(lambda: env.work.queue.idle() and env.work.queue.processed > processed, 10, "a quiet reconcile")
    assert env.work.writes == writes


async def test_prerequisites_and_fitting_gate_the_children(env: Env) -> None:
    await apply_all(env, bfb(), flavor(), flavor("small", cpu="5"), configuration(), deployment())
    got = await eventually(lambda: condition(env, "PrerequisitesReady").get("status") == "False"
                           and condition(env, "PrerequisitesReady"), 10, "PrerequisitesReady False")  # fmt: skip
    assert got["reason"] == "Pending"
    assert got["message"] == f"Error occurred: DPUServiceTemplate {NS}/hbn-t not found"
    assert condition(env, "Ready")["status"] == "False"
    assert all(get(env, *c) is None for c in CHILDREN)

    await env.server.apply_object(template())  # it arrives: the deployment proceeds
    await eventually(lambda: all(get(env, *c) for c in CHILDREN), 10, "the children once the template is there")

    # A flavor too small: 2 CPUs asked, 1 left after the reserve.
    await env.server.apply_object(deployment(flavor_name="small"))
    got = await eventually(lambda: condition(env, "ResourceFittingReady").get("status") == "False"
                           and condition(env, "ResourceFittingReady"), 10, "ResourceFittingReady False")  # fmt: skip
    assert got["reason"] == "Failure"
    assert got["message"] == (
        "Error occurred: there are not enough resources for DPUServices to fit in this DPUDeployment: "
        "Additional resources needed: cpu=1"
    )
    ready = condition(env, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "Failure" and "ResourceFittingReady" in ready["message"]
    dpuset = get(env, PROV, "DPUSet", "dd-dpuset1")
    assert dpuset is not None and dpuset["spec"]["dpuTemplate"]["spec"]["dpuFlavor"] == "hbn-flavor"  # untouched
    # The flavor it no longer uses is released, the one it names now is marked.
    await eventually(lambda: CONSUMED not in ((get(env, PROV, "DPUFlavor", "hbn-flavor") or {})["metadata"]
                                              .get("labels") or {}), 10, "old flavor released")  # fmt: skip
    old = get(env, PROV, "DPUFlavor", "hbn-flavor")
    assert old is not None and FINALIZER not in (old["metadata"].get("finalizers") or [])
    small = get(env, PROV, "DPUFlavor", "small")
    assert small is not None and small["metadata"]["labels"][CONSUMED] == "dd"


async def test_deletion_goes_services_first_then_dpusets_then_releases(env: Env) -> None:
    await apply_all(env, bfb(), flavor(), template(), configuration(), deployment())
    await eventually(lambda: all(get(env, *c) for c in CHILDREN), 10, "the four children")
    # Something in the DPU clusters still holds the DPUService (as DPF's Argo cleanup would).
    svc = get(env, SVC, "DPUService", "dd-hbn")
    assert svc is not None
    await env.server.apply_object({**svc, "metadata": {**svc["metadata"], "finalizers": ["example.com/hold"]}})

    await env.server.delete_object(SVC, "DPUDeployment", "dd", NS)
    await eventually(lambda: get(env, SVC, "DPUServiceChain", "dd") is None
                     and get(env, SVC, "DPUServiceInterface", "dd-hbn-p0-if") is None, 10, "chain, interfaces gone")  # fmt: skip
    held = await eventually(lambda: (s := get(env, SVC, "DPUService", "dd-hbn")) and s["metadata"].get(
        "deletionTimestamp") and s, 10, "DPUService deleting")  # fmt: skip
    assert held is not None
    waiting = await eventually(lambda: condition(env, "DPUServicesReconciled").get("reason") == "AwaitingDeletion"
                               and condition(env, "DPUServicesReconciled"), 10, "awaiting the DPUService")  # fmt: skip
    assert waiting["message"] == "There are still 1 DPUServices that are not completely deleted"
    dpuset = get(env, PROV, "DPUSet", "dd-dpuset1")
    assert dpuset is not None and not dpuset["metadata"].get("deletionTimestamp")  # the DPUs stay meanwhile
    assert get(env, SVC, "DPUDeployment", "dd") is not None

    await env.server.apply_object({**held, "metadata": {**held["metadata"], "finalizers": []}})
    await eventually(lambda: get(env, PROV, "DPUSet", "dd-dpuset1") is None, 15, "DPUSet deleted after the service")
    await eventually(lambda: get(env, SVC, "DPUDeployment", "dd") is None, 15, "DPUDeployment gone")
    for api, kind, name in ((PROV, "BFB", "bf-bundle"), (PROV, "DPUFlavor", "hbn-flavor"),
                            (SVC, "DPUServiceTemplate", "hbn-t"), (SVC, "DPUServiceConfiguration", "hbn-c")):  # fmt: skip
        dep = get(env, api, kind, name)
        assert dep is not None
        assert CONSUMED not in (dep["metadata"].get("labels") or {}), kind
        assert FINALIZER not in (dep["metadata"].get("finalizers") or []), kind


async def test_dropped_interface_goes_and_a_wrong_service_name_is_named(env: Env) -> None:
    two = configuration()
    two["spec"]["interfaces"].append({"name": "app", "network": "mybrsfc"})
    await apply_all(env, bfb(), flavor(), template(), two, deployment())
    await eventually(lambda: get(env, SVC, "DPUServiceInterface", "dd-hbn-app"), 10, "the second interface")

    await env.server.apply_object(configuration())  # back to p0_if only
    await eventually(lambda: get(env, SVC, "DPUServiceInterface", "dd-hbn-app") is None, 10, "interface deleted")
    svc = await eventually(lambda: (s := get(env, SVC, "DPUService", "dd-hbn")) and
                           s["spec"]["interfaces"] == ["dd-hbn-p0-if"] and s, 10, "service interfaces")  # fmt: skip
    assert svc is not None

    wrong = template()
    wrong["metadata"]["name"] = "other-t"
    wrong["spec"]["deploymentServiceName"] = "doca-telemetry"
    dd = deployment()
    dd["spec"]["services"]["hbn"]["serviceTemplate"] = "other-t"
    await apply_all(env, wrong, dd)
    got = await eventually(lambda: condition(env, "PrerequisitesReady").get("status") == "False"
                           and condition(env, "PrerequisitesReady"), 10, "PrerequisitesReady False")  # fmt: skip
    assert got["message"] == (
        f"Error occurred: service in DPUServiceTemplate {NS}/other-t doesn't match requested service in "
        "DPUDeployment ('doca-telemetry' is not 'hbn')"
    )
