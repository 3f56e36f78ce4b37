"""The emulated API over TLS: kubectl with the admin kubeconfig, bootstrap-token authentication, anonymous
cluster-info, and the JWS signatures token discovery checks."""

from __future__ import annotations

import base64
import json
import ssl
import stat
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from dpfd.sim import bootstrap_tokens as bootstrap
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ServerTls, ensure_tls
from tests.integration.dpucluster.conftest import Run, start_kubeapi_process, stop_kubeapi_process, token_secret

GOOD_ID, GOOD_SECRET = "abcdef", "0123456789abcdef"


def kubeconfig_with(path: Path, base: Path, *, token: str | None, ca_data: str | None = None) -> Path:
    config = yaml.safe_load(base.read_text())
    user = config["users"][0]["user"]
    user.pop("token", None)
    if token is not None:
        user["token"] = token
    if ca_data is not None:
        config["clusters"][0]["cluster"]["certificate-authority-data"] = ca_data
    path.write_text(yaml.safe_dump(config))
    return path


async def call(
    server: KubeApiServer, pki: ServerTls, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cadata=pki.ca_pem.decode())
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.url + path, headers=headers, json=body, ssl=context) as resp,
    ):
        return resp.status, json.loads(await resp.read() or b"{}")


NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "dpu-a"}}


async def test_kubectl_works_with_the_tls_admin_kubeconfig(
    tls_kubeapi: KubeApiServer, tls_kubeconfig: Path, pki: ServerTls, kubectl: Run
) -> None:
    config = yaml.safe_load(tls_kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == pki.ca_data
    assert config["users"][0]["user"] == {"token": pki.admin_token}
    assert stat.S_IMODE(tls_kubeconfig.stat().st_mode) == 0o600  # it holds the admin token

    await kubectl(tls_kubeconfig, "create", "configmap", "c", "--from-literal=k=v")
    got = json.loads((await kubectl(tls_kubeconfig, "get", "configmap", "c", "-o", "json")).out)
    assert got["data"] == {"k": "v"}
    names = (await kubectl(tls_kubeconfig, "get", "namespaces", "-o", "name")).out.split()
    assert "namespace/kube-public" in names

    # `kubeadm init` publishes the cluster's address and CA for token discovery
    info = json.loads(
        (await kubectl(tls_kubeconfig, "get", "cm", "cluster-info", "-n", "kube-public", "-o", "json")).out
    )
    public = yaml.safe_load(info["data"]["kubeconfig"])
    assert public["clusters"][0]["cluster"] == {"certificate-authority-data": pki.ca_data, "server": tls_kubeapi.url}
    assert public["users"] is None  # no credentials in the public copy


async def test_anonymous_wrong_token_and_wrong_ca(
    tls_kubeapi: KubeApiServer, tls_kubeconfig: Path, pki: ServerTls, tmp_path: Path, kubectl: Run
) -> None:
    # (kubectl itself prompts for a password when its kubeconfig has no credentials: plain HTTPS requests here)
    status, denied = await call(tls_kubeapi, pki, "GET", "/api/v1/nodes")
    assert status == 403 and denied["reason"] == "Forbidden"
    assert denied["message"] == (
        'nodes is forbidden: User "system:anonymous" cannot list resource "nodes" in API group "" at the cluster scope'
    )
    assert (await call(tls_kubeapi, pki, "GET", "/api"))[0] == 403  # discovery needs an identity too
    # ... but cluster-info is readable by anyone, as kubeadm's RBAC rule allows
    status, info = await call(tls_kubeapi, pki, "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
    assert status == 200 and "kubeconfig" in info["data"]

    wrong = kubeconfig_with(tmp_path / "wrong.conf", tls_kubeconfig, token="not-the-token")
    refused = await kubectl(wrong, "get", "nodes", check=False)
    assert refused.rc != 0 and "You must be logged in to the server" in refused.err

    other_ca = ensure_tls(tmp_path / "other-pki").ca_data
    impostor = kubeconfig_with(tmp_path / "other-ca.conf", tls_kubeconfig, token="x", ca_data=other_ca)
    untrusted = await kubectl(impostor, "get", "nodes", check=False)
    assert untrusted.rc != 0 and "certificate signed by unknown authority" in untrusted.err


async def test_bootstrap_tokens_authenticate_only_while_valid(tls_kubeapi: KubeApiServer, pki: ServerTls) -> None:
    await tls_kubeapi.apply_object(token_secret(GOOD_ID, GOOD_SECRET))
    await tls_kubeapi.apply_object(token_secret("expird", "0123456789abcdef", expires_in=-5))
    await tls_kubeapi.apply_object(token_secret("signon", "0123456789abcdef", auth=False))
    good = f"{GOOD_ID}.{GOOD_SECRET}"

    status, node = await call(tls_kubeapi, pki, "POST", "/api/v1/nodes", good, NODE)
    assert status == 201 and node["metadata"]["name"] == "dpu-a"
    status, _ = await call(tls_kubeapi, pki, "GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config", good)
    assert status == 200
    # a joining node may not read Secrets
    status, body = await call(tls_kubeapi, pki, "GET", "/api/v1/namespaces/kube-system/secrets", good)
    assert status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        'secrets is forbidden: User "system:bootstrap:abcdef" cannot list resource "secrets" in API group "" '
        'in the namespace "kube-system"'
    )

    unauthorized = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}  # fmt: skip
    for bad in (
        f"{GOOD_ID}.ffffffffffffffff",  # wrong secret
        "expird.0123456789abcdef",  # expired
        "signon.0123456789abcdef",  # not for authentication
        "nonexi.0123456789abcdef",  # no Secret
        "not-a-token",
    ):
        assert await call(tls_kubeapi, pki, "GET", "/api/v1/nodes", bad) == (401, unauthorized), bad

    await tls_kubeapi.delete_object("v1", "Secret", f"bootstrap-token-{GOOD_ID}", "kube-system")
    assert (await call(tls_kubeapi, pki, "GET", "/api/v1/nodes", good))[0] == 401  # revoked
    assert (await call(tls_kubeapi, pki, "GET", "/api/v1/nodes", pki.admin_token))[0] == 200
    assert (await call(tls_kubeapi, pki, "GET", "/version"))[0] == 200  # anonymous health and version


async def test_cluster_info_is_signed_for_each_valid_signing_token(tls_kubeapi: KubeApiServer, pki: ServerTls) -> None:
    await tls_kubeapi.apply_object(token_secret(GOOD_ID, GOOD_SECRET))
    await tls_kubeapi.apply_object(token_secret("expird", "0123456789abcdef", expires_in=-5))
    await tls_kubeapi.apply_object(token_secret("nosign", "0123456789abcdef", signing=False))
    status, info = await call(tls_kubeapi, pki, "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")
    assert status == 200
    signatures = {k: v for k, v in info["data"].items() if k.startswith("jws-kubeconfig-")}
    assert list(signatures) == [f"jws-kubeconfig-{GOOD_ID}"]
    content = info["data"]["kubeconfig"]
    assert bootstrap.signature_valid(content, signatures[f"jws-kubeconfig-{GOOD_ID}"], GOOD_ID, GOOD_SECRET)
    assert not bootstrap.signature_valid(content, signatures[f"jws-kubeconfig-{GOOD_ID}"], GOOD_ID, "f" * 16)
    header = json.loads(base64.urlsafe_b64decode(signatures[f"jws-kubeconfig-{GOOD_ID}"].split(".")[0] + "=="))
    assert header == {"alg": "HS256", "kid": GOOD_ID}


async def test_process_with_tls_dir_keeps_its_ca_across_restarts(tmp_path: Path, kubectl: Run) -> None:
    tls_dir = tmp_path / "pki"
    first = await start_kubeapi_process(tmp_path, tls_dir)
    try:
        await kubectl(first.kubeconfig, "get", "nodes")
        ca_before = yaml.safe_load(first.kubeconfig.read_text())["clusters"][0]["cluster"]["certificate-authority-data"]
    finally:
        assert await stop_kubeapi_process(first) == 0
    second = await start_kubeapi_process(tmp_path, tls_dir)
    try:
        config = yaml.safe_load(second.kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["certificate-authority-data"] == ca_before
        info = json.loads(
            (await kubectl(second.kubeconfig, "get", "cm", "cluster-info", "-n", "kube-public", "-o", "json")).out
        )
        assert yaml.safe_load(info["data"]["kubeconfig"])["clusters"][0]["cluster"]["server"] == second.url
        assert (await kubectl(first.kubeconfig, "get", "nodes", check=False)).rc != 0  # the old port is gone
    finally:
        assert await stop_kubeapi_process(second) == 0
