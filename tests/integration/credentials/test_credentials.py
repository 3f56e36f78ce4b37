"""DPUServiceCredentialRequest end to end against emulated TLS APIs (host and a DPU cluster): the ServiceAccount
and token in the target, the kubeconfig or token-file Secret in the host with DPF's keys, labels and status, the
tokens accepted by the target's API (the real kubectl for kubeconfigs), renaming, retargeting, a missing
DPUCluster, a lost Secret, and deletion."""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp
import yaml
from credentials_harness import NS, Env, Kubectl, condition, credential_request, secret_values

from controller.credentials.refs import parse_time
from dpfd.sim.kubeapi import KubeApiServer
from tests.waiting import eventually


async def bearer_status(server: KubeApiServer, ca_pem: bytes, token: str, path: str = "/api") -> int:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.url + path, headers={"Authorization": f"Bearer {token}"}, ssl=context) as resp,
    ):
        return resp.status


def ready(env: Env, name: str) -> dict[str, Any] | None:
    obj = env.request(name)
    return obj if condition(obj, "Ready").get("status") == "True" else None


def kubeconfig_token(secret: dict[str, Any] | None) -> str:
    config = yaml.safe_load(secret_values(secret)["kubeconfig"])
    return str(config["users"][0]["user"]["token"])


async def test_kubeconfig_for_a_host_service_account(env: Env, kubectl: Kubectl) -> None:
    work = env.make_work()
    env.start(work)
    await env.host.apply_object(credential_request("ovn", labels={"app": "ovn"}))
    obj = await eventually(lambda: ready(env, "ovn"), 10, "the request Ready")
    # the finalizer's own watch event brings the request back before the cache has the status: still one token
    await eventually(lambda: work.queue.processed >= 2 and not work.busy(), 10, "the second pass done")
    assert work.tokens_issued == 1

    assert obj["metadata"]["finalizers"] == ["dpu.nvidia.com/dpuservicecredentialrequest"]
    status = obj["status"]
    assert status["serviceAccount"] == f"{NS}/ovn-dpu"
    assert status["secret"] == f"{NS}/ovn-dpu-credentials"
    assert "targetCluster" not in status
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]} == {
        "Ready": ("True", "Success"),
        "ServiceAccountReconciled": ("True", "Success"),
        "SecretReconciled": ("True", "Success"),
    }
    sa = env.host.get_object("v1", "ServiceAccount", "ovn-dpu", NS)
    assert sa is not None and sa["automountServiceAccountToken"] is False

    secret = env.secret("ovn-dpu-credentials")
    assert secret is not None
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == {"app": "ovn"}
    assert secret["metadata"]["annotations"] == {"team": "networking"}
    assert list(secret["data"]) == ["kubeconfig"]
    config = yaml.safe_load(secret_values(secret)["kubeconfig"])
    assert config["current-context"] == "ovn-dpu"
    assert config["clusters"][0]["name"] == "incluster"
    assert config["clusters"][0]["cluster"]["server"] == env.host.url
    assert config["contexts"][0]["context"] == {"cluster": "incluster", "namespace": NS, "user": "ovn-dpu"}

    # the expiry is the requested 10 minutes after issue, and status says so
    expires, issued = parse_time(status["expirationTimestamp"]), parse_time(status["issuedAt"])
    assert expires is not None and issued is not None and expires - issued == 600

    # The real kubectl with the Secret's kubeconfig: the host API knows the ServiceAccount's token.
    path = env.tmp / "ovn.conf"
    path.write_text(secret_values(secret)["kubeconfig"])
    rc, out, err = await kubectl(path, "get", "--raw", "/api")
    assert rc == 0, err
    assert json.loads(out)["kind"] == "APIVersions"
    rc, _, err = await kubectl(path, "get", "pods")
    assert rc != 0
    assert f'User "system:serviceaccount:{NS}:ovn-dpu" cannot list resource "pods"' in err

    # a lost Secret is rewritten at once with a new token (DPF would write it empty until the next renewal)
    await env.host.delete_object("v1", "Secret", "ovn-dpu-credentials", NS)
    await env.host.apply_object(credential_request("ovn", labels={"app": "ovn", "rev": "2"}))  # a nudge
    again = await eventually(lambda: env.secret("ovn-dpu-credentials"), 10, "the Secret back")
    assert kubeconfig_token(again) != config["users"][0]["user"]["token"]
    assert again["metadata"]["labels"] == {"app": "ovn", "rev": "2"}


async def test_token_file_for_a_dpu_cluster_service_account(env: Env) -> None:
    await env.add_dpu_cluster()
    env.start(env.make_work())
    await env.host.apply_object(credential_request("ovn", kind="tokenFile", target="dpu-cplane", duration="1h"))
    obj = await eventually(lambda: ready(env, "ovn"), 10, "the request Ready")
    assert obj["status"]["targetCluster"] == f"{NS}/dpu-cplane"

    # the ServiceAccount is in the DPU cluster, not the host
    assert env.dpu.get_object("v1", "ServiceAccount", "ovn-dpu", NS) is not None
    assert env.host.get_object("v1", "ServiceAccount", "ovn-dpu", NS) is None

    values = secret_values(env.secret("ovn-dpu-credentials"))
    assert sorted(values) == ["KUBERNETES_CA_DATA", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "TOKEN_FILE"]
    host, port = env.dpu.url.removeprefix("https://").split(":")
    assert (values["KUBERNETES_SERVICE_HOST"], values["KUBERNETES_SERVICE_PORT"]) == (host, port)
    assert env.dpu.tls is not None and values["KUBERNETES_CA_DATA"] == env.dpu.tls.ca_pem.decode()
    token = values["TOKEN_FILE"]
    assert await bearer_status(env.dpu, env.dpu.tls.ca_pem, token) == 200
    assert env.host.tls is not None and await bearer_status(env.host, env.host.tls.ca_pem, token) == 401

    # deletion: the ServiceAccount leaves the DPU cluster, the Secret the host, then the request itself
    await env.host.delete_object("svc.dpu.nvidia.com/v1alpha1", "DPUServiceCredentialRequest", "ovn", NS)
    await eventually(lambda: env.request("ovn") is None, 10, "the request gone")
    assert env.dpu.get_object("v1", "ServiceAccount", "ovn-dpu", NS) is None
    assert env.secret("ovn-dpu-credentials") is None
    assert await bearer_status(env.dpu, env.dpu.tls.ca_pem, token) == 401


async def test_missing_cluster_then_retarget_and_renames(env: Env) -> None:
    env.start(env.make_work())
    await env.host.apply_object(credential_request("ovn", target="dpu-cplane"))
    failing = await eventually(
        lambda: (
            condition(env.request("ovn"), "ServiceAccountReconciled").get("status") == "False" and env.request("ovn")
        ),
        10,
        "ServiceAccountReconciled False",
    )
    sa_cond = condition(failing, "ServiceAccountReconciled")
    assert sa_cond["reason"] == "Error"
    assert sa_cond["message"].startswith("Error occurred: error while getting DPU cluster dpu-cplane:")
    top = condition(failing, "Ready")
    assert (top["status"], top["reason"]) == ("False", "Pending")
    assert top["message"] == "The following conditions are not ready:\n* ServiceAccountReconciled"

    await env.add_dpu_cluster()  # the DPUCluster's arrival retries the request
    first = await eventually(lambda: ready(env, "ovn"), 15, "Ready once the DPUCluster exists")
    assert env.dpu.get_object("v1", "ServiceAccount", "ovn-dpu", NS) is not None
    old_token = kubeconfig_token(env.secret("ovn-dpu-credentials"))
    config = yaml.safe_load(secret_values(env.secret("ovn-dpu-credentials"))["kubeconfig"])
    assert config["clusters"][0] == {
        "name": "dpu-cplane-admin",  # the DPU cluster's name in its admin kubeconfig
        "cluster": {"server": env.dpu.url, "certificate-authority-data": env.dpu.kubeconfig()["clusters"][0]["cluster"][
            "certificate-authority-data"]},
    }  # fmt: skip

    # renaming the Secret moves the data (same token) and deletes the old one
    await env.host.apply_object(credential_request("ovn", target="dpu-cplane", secret="renamed"))
    await eventually(lambda: env.secret("ovn-dpu-credentials") is None and env.secret("renamed"), 10, "moved")
    assert kubeconfig_token(env.secret("renamed")) == old_token
    await eventually(lambda: (env.request("ovn") or {}).get("status", {}).get("secret") == f"{NS}/renamed", 10)

    # back to the host: the ServiceAccount leaves the DPU cluster and is made in the host, with a new token
    to_host = credential_request("ovn", secret="renamed")
    to_host["spec"]["targetCluster"] = None  # apply merges: null removes the field
    await env.host.apply_object(to_host)
    await eventually(lambda: env.host.get_object("v1", "ServiceAccount", "ovn-dpu", NS), 10, "the host's SA")
    await eventually(lambda: env.dpu.get_object("v1", "ServiceAccount", "ovn-dpu", NS) is None, 10, "DPU SA gone")
    moved = await eventually(lambda: ready(env, "ovn") if "targetCluster" not in
                             ((env.request("ovn") or {}).get("status") or {}) else None, 10, "retargeted")  # fmt: skip
    assert moved["status"]["serviceAccount"] == f"{NS}/ovn-dpu"
    assert kubeconfig_token(env.secret("renamed")) != old_token
    assert first["status"]["issuedAt"] <= moved["status"]["issuedAt"]

    # renaming the ServiceAccount deletes the old one
    await env.host.apply_object(credential_request("ovn", secret="renamed", sa="ovn-dpu-2"))
    await eventually(lambda: env.host.get_object("v1", "ServiceAccount", "ovn-dpu-2", NS), 10, "the new SA")
    await eventually(lambda: env.host.get_object("v1", "ServiceAccount", "ovn-dpu", NS) is None, 10, "old SA gone")
    await eventually(
        lambda: yaml.safe_load(secret_values(env.secret("renamed"))["kubeconfig"])["current-context"] == "ovn-dpu-2",
        10,
        "the kubeconfig for the new account",
    )

    # a target that does not exist changes nothing: the working account and its Secret stay
    await env.host.apply_object(credential_request("ovn", secret="renamed", sa="ovn-dpu-2", target="nope"))
    await eventually(
        lambda: "DPU cluster nope" in condition(env.request("ovn"), "ServiceAccountReconciled").get("message", ""),
        10,
        "the error about the missing DPUCluster",
    )
    assert env.host.get_object("v1", "ServiceAccount", "ovn-dpu-2", NS) is not None
    assert (env.request("ovn") or {})["status"]["serviceAccount"] == f"{NS}/ovn-dpu-2"
    assert "kubeconfig" in secret_values(env.secret("renamed"))


async def test_deletion_goes_through_when_the_dpu_cluster_is_gone(env: Env) -> None:
    await env.add_dpu_cluster()
    env.start(env.make_work())
    await env.host.apply_object(credential_request("ovn", target="dpu-cplane"))
    await eventually(lambda: ready(env, "ovn"), 10, "Ready")
    await env.host.delete_object("provisioning.dpu.nvidia.com/v1alpha1", "DPUCluster", "dpu-cplane", NS)
    await eventually(lambda: env.clusters.get(NS, "dpu-cplane") is None, 10, "the DPUCluster out of the cache")
    await env.host.delete_object("svc.dpu.nvidia.com/v1alpha1", "DPUServiceCredentialRequest", "ovn", NS)
    await eventually(lambda: env.request("ovn") is None, 10, "the request gone")
    assert env.secret("ovn-dpu-credentials") is None


async def test_plain_http_host_as_dpf_sim_runs_it(plain_env: Env, kubectl: Kubectl) -> None:
    env = plain_env
    env.start(env.make_work())
    await env.host.apply_object(credential_request("ovn", kind="tokenFile"))
    await eventually(lambda: ready(env, "ovn"), 10, "the request Ready")
    values = secret_values(env.secret("ovn-dpu-credentials"))
    host, port = env.host.url.removeprefix("http://").split(":")
    assert (values["KUBERNETES_SERVICE_HOST"], values["KUBERNETES_SERVICE_PORT"]) == (host, port)
    assert values["KUBERNETES_CA_DATA"] == ""  # no CA to hand out
    assert values["TOKEN_FILE"].count(".") == 2

    await env.host.apply_object(credential_request("ovn", kind="kubeconfig"))  # a change of type: a new token
    config_text = (await eventually(lambda: secret_values(env.secret("ovn-dpu-credentials")).get("kubeconfig"), 10,
                                    "the kubeconfig"))  # fmt: skip
    assert sorted(secret_values(env.secret("ovn-dpu-credentials"))) == ["kubeconfig"]
    path = env.tmp / "plain.conf"
    path.write_text(config_text)
    rc, out, err = await kubectl(path, "get", "secrets", "-o", "name")
    assert rc == 0, err
    assert "secret/ovn-dpu-credentials" in out
