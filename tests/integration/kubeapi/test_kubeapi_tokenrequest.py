"""The TokenRequest subresource of the emulated API (serviceaccounts/{name}/token), through the real kubectl and
raw HTTP, and the tokens it issues accepted as bearer tokens for their ServiceAccount (over TLS)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ServerTls, ensure_tls


@dataclass
class Result:
    rc: int
    out: str
    err: str


@pytest.fixture
def pki(tmp_path: Path) -> ServerTls:
    return ensure_tls(tmp_path / "pki")


@pytest.fixture
async def tls_server(pki: ServerTls) -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer(tls=pki, bookmark_interval=0.2)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def admin_conf(tls_server: KubeApiServer, tmp_path: Path) -> Path:
    path = tmp_path / "admin.conf"
    tls_server.write_kubeconfig(path)
    return path


async def run_kubectl(tmp_path: Path, kubeconfig: Path, *args: str) -> Result:
    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "kube-cache"), "HOME": str(tmp_path)}
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), *args, stdout=pipe, stderr=pipe, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    return Result(proc.returncode or 0, out.decode(), err.decode())


def with_token(admin_conf: Path, path: Path, token: str) -> Path:
    config = yaml.safe_load(admin_conf.read_text())
    config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def call(
    server: KubeApiServer, pki: ServerTls | None, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cadata=pki.ca_pem.decode()) if pki is not None else None
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.url + path, headers=headers, json=body, ssl=context) as resp,
    ):
        return resp.status, json.loads(await resp.read() or b"{}")


def service_account(name: str, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


async def test_kubectl_create_token_gives_a_token_the_api_accepts_for_that_service_account(
    tls_server: KubeApiServer, admin_conf: Path, tmp_path: Path
) -> None:
    created = await run_kubectl(tmp_path, admin_conf, "create", "serviceaccount", "ovn", "-n", "kube-system")
    assert created.rc == 0, created.err
    made = await run_kubectl(tmp_path, admin_conf, "create", "token", "ovn", "-n", "kube-system", "--duration=20m")
    assert made.rc == 0, made.err
    token = made.out.strip()
    sa = tls_server.get_object("v1", "ServiceAccount", "ovn", "kube-system")
    assert sa is not None
    c = claims(token)
    assert c["sub"] == "system:serviceaccount:kube-system:ovn"
    assert c["kubernetes.io"]["serviceaccount"] == {"name": "ovn", "uid": sa["metadata"]["uid"]}
    assert c["exp"] - c["iat"] == 1200
    assert c["aud"] == ["https://kubernetes.default.svc.cluster.local"]

    sa_conf = with_token(admin_conf, tmp_path / "sa.conf", token)
    discovery = await run_kubectl(tmp_path, sa_conf, "get", "--raw", "/api")
    assert discovery.rc == 0, discovery.err  # authenticated: discovery is everyone's
    listing = await run_kubectl(tmp_path, sa_conf, "get", "secrets", "-n", "kube-system")
    assert listing.rc != 0
    assert 'User "system:serviceaccount:kube-system:ovn" cannot list resource "secrets"' in listing.err

    forged = with_token(admin_conf, tmp_path / "forged.conf", token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"))
    refused = await run_kubectl(tmp_path, forged, "get", "--raw", "/api")
    assert refused.rc != 0
    assert "Unauthorized" in refused.err


async def test_kubectl_create_token_refuses_a_short_duration_and_a_missing_account(
    tls_server: KubeApiServer, admin_conf: Path, tmp_path: Path
) -> None:
    missing = await run_kubectl(tmp_path, admin_conf, "create", "token", "nobody")
    assert missing.rc != 0
    assert 'serviceaccounts "nobody" not found' in missing.err
    await tls_server.apply_object(service_account("short"))
    short = await run_kubectl(tmp_path, admin_conf, "create", "token", "short", "--duration=5m")
    assert short.rc != 0
    assert "may not specify a duration less than 10 minutes" in short.err


async def test_token_request_defaults_and_answer(tls_server: KubeApiServer, pki: ServerTls) -> None:
    sa = await tls_server.apply_object(service_account("svc"))
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    path = "/api/v1/namespaces/default/serviceaccounts/svc/token"
    status, answer = await call(tls_server, pki, "POST", path, pki.admin_token, {"spec": {}})
    assert status == 201, answer
    assert answer["kind"] == "TokenRequest" and answer["apiVersion"] == "authentication.k8s.io/v1"
    assert answer["metadata"]["name"] == "svc" and answer["metadata"]["uid"] == sa["metadata"]["uid"]
    assert answer["spec"]["expirationSeconds"] == 3600
    assert answer["spec"]["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    expires = dt.datetime.fromisoformat(answer["status"]["expirationTimestamp"])
    assert dt.timedelta(seconds=3599) <= expires - before <= dt.timedelta(seconds=3602)
    assert claims(answer["status"]["token"])["exp"] == int(expires.timestamp())

    status, bad = await call(tls_server, pki, "POST", path, pki.admin_token, {"spec": {"expirationSeconds": 599}})
    assert status == 422 and bad["reason"] == "Invalid"
    assert bad["message"] == (
        'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: '
        "may not specify a duration less than 10 minutes"
    )
    status, other = await call(tls_server, pki, "POST", path, pki.admin_token, {"metadata": {"name": "other"}})
    assert status == 422 and "must match the service account name" in other["message"]
    status, _ = await call(tls_server, pki, "GET", path, pki.admin_token)
    assert status == 405
    # a token may not mint tokens: only the admin may create serviceaccounts/token here (no RBAC)
    token = (await call(tls_server, pki, "POST", path, pki.admin_token, {}))[1]["status"]["token"]
    status, denied = await call(tls_server, pki, "POST", path, token, {})
    assert status == 403 and 'cannot create resource "serviceaccounts/token"' in denied["message"]


async def test_discovery_lists_the_token_subresource(tls_server: KubeApiServer, pki: ServerTls) -> None:
    status, doc = await call(tls_server, pki, "GET", "/api/v1", pki.admin_token)
    assert status == 200
    entry = next(r for r in doc["resources"] if r["name"] == "serviceaccounts/token")
    assert entry["kind"] == "TokenRequest" and entry["group"] == "authentication.k8s.io"
    assert entry["verbs"] == ["create"]


async def test_a_token_dies_with_its_account_expiry_and_bound_object(tls_server: KubeApiServer, pki: ServerTls) -> None:
    await tls_server.apply_object(service_account("svc"))
    path = "/api/v1/namespaces/default/serviceaccounts/svc/token"
    token = (await call(tls_server, pki, "POST", path, pki.admin_token, {"spec": {"expirationSeconds": 600}}))[1][
        "status"
    ]["token"]
    assert (await call(tls_server, pki, "GET", "/api", token))[0] == 200

    real_clock = tls_server.tokens.clock
    tls_server.tokens.clock = lambda: real_clock() + 601  # past its expiry
    try:
        assert (await call(tls_server, pki, "GET", "/api", token))[0] == 401
    finally:
        tls_server.tokens.clock = real_clock

    other_audience = (await call(tls_server, pki, "POST", path, pki.admin_token, {"spec": {"audiences": ["vault"]}}))[
        1
    ]["status"]["token"]
    assert (await call(tls_server, pki, "GET", "/api", other_audience))[0] == 401

    secret = await tls_server.apply_object(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "anchor", "namespace": "default"}}
    )
    ref = {"apiVersion": "v1", "kind": "Secret", "name": "anchor"}
    status, wrong_uid = await call(
        tls_server, pki, "POST", path, pki.admin_token, {"spec": {"boundObjectRef": {**ref, "uid": "not-it"}}}
    )
    assert status == 409, wrong_uid
    status, bound_answer = await call(tls_server, pki, "POST", path, pki.admin_token, {"spec": {"boundObjectRef": ref}})
    assert status == 201
    bound = bound_answer["status"]["token"]
    assert claims(bound)["kubernetes.io"]["secret"] == {"name": "anchor", "uid": secret["metadata"]["uid"]}
    status, cm_bound = await call(
        tls_server, pki, "POST", path, pki.admin_token,
        {"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}}},
    )  # fmt: skip
    assert status == 400 and "cannot bind token to object of type" in cm_bound["message"]
    assert (await call(tls_server, pki, "GET", "/api", bound))[0] == 200
    await tls_server.delete_object("v1", "Secret", "anchor", "default")
    assert (await call(tls_server, pki, "GET", "/api", bound))[0] == 401

    # the account deleted and made again under the same name: the old token does not come back to life
    await tls_server.delete_object("v1", "ServiceAccount", "svc", "default")
    assert (await call(tls_server, pki, "GET", "/api", token))[0] == 401
    await tls_server.apply_object(service_account("svc"))
    assert (await call(tls_server, pki, "GET", "/api", token))[0] == 401


async def test_tokens_survive_a_restart_on_the_same_pki(tmp_path: Path) -> None:
    pki = ensure_tls(tmp_path / "pki")
    state = tmp_path / "state"
    first = KubeApiServer(tls=pki, state_dir=state)
    await first.start()
    try:
        await first.apply_object(service_account("svc"))
        path = "/api/v1/namespaces/default/serviceaccounts/svc/token"
        token = (await call(first, pki, "POST", path, pki.admin_token, {}))[1]["status"]["token"]
    finally:
        await first.stop()
    second = KubeApiServer(tls=ensure_tls(tmp_path / "pki"), state_dir=state)
    await second.start()
    try:
        assert (await call(second, pki, "GET", "/api", token))[0] == 200
    finally:
        await second.stop()


async def test_plain_http_server_serves_token_requests_too(kubeapi: KubeApiServer) -> None:
    await kubeapi.apply_object(service_account("svc"))
    status, answer = await call(
        kubeapi, None, "POST", "/api/v1/namespaces/default/serviceaccounts/svc/token", None, {"spec": {}}
    )
    assert status == 201 and answer["status"]["token"].count(".") == 2


async def test_kubectl_create_token_bound_to_a_secret_with_an_audience(
    tls_server: KubeApiServer, admin_conf: Path, tmp_path: Path
) -> None:
    await tls_server.apply_object(service_account("svc"))
    secret = await tls_server.apply_object(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "anchor", "namespace": "default"}}
    )
    made = await run_kubectl(
        tmp_path, admin_conf, "create", "token", "svc", "--duration=15m", "--audience=vault",
        "--audience=https://kubernetes.default.svc.cluster.local", "--bound-object-kind=Secret",
        "--bound-object-name=anchor", f"--bound-object-uid={secret['metadata']['uid']}",
    )  # fmt: skip
    assert made.rc == 0, made.err
    c = claims(made.out.strip())
    assert c["aud"] == ["vault", "https://kubernetes.default.svc.cluster.local"]
    assert c["exp"] - c["iat"] == 900
    assert c["kubernetes.io"]["secret"] == {"name": "anchor", "uid": secret["metadata"]["uid"]}
    wrong = await run_kubectl(
        tmp_path, admin_conf, "create", "token", "svc", "--bound-object-kind=Secret", "--bound-object-name=anchor",
        "--bound-object-uid=0000",
    )  # fmt: skip
    assert wrong.rc != 0 and "does not match the UID in record" in wrong.err
