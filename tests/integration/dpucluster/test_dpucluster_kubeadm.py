"""The emulated kubeadm joining a node to the emulated API served as a process over TLS, end to end:
token discovery (JWS signature, CA pin), the bootstrap token, and the Node it registers."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dpfd.sim.ports import free_port
from tests.integration.dpucluster.conftest import KubeApiProcess, Run, token_secret

TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
TOKEN = f"{TOKEN_ID}.{TOKEN_SECRET}"


def pin_of(kubeconfig: Path) -> str:
    """The CA pin computed here, independently of the code under test."""
    config = yaml.safe_load(kubeconfig.read_text())
    ca = x509.load_pem_x509_certificate(
        base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    )
    spki = ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def join_config(path: Path, endpoint: str, *, name: str, token: str = TOKEN, pins: list[str], labels: str = "",
                timeout: str = "20s") -> Path:  # fmt: skip
    doc: dict[str, Any] = {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {"apiServerEndpoint": endpoint, "token": token, "caCertHashes": pins},
            "timeout": timeout,
        },
        "nodeRegistration": {"name": name, "kubeletExtraArgs": {"node-labels": labels} if labels else {}},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


async def add_token(api: KubeApiProcess, kubectl: Run, tmp_path: Path, token_id: str, secret: str, **kw: Any) -> None:
    manifest = tmp_path / f"token-{token_id}.yaml"
    manifest.write_text(yaml.safe_dump(token_secret(token_id, secret, **kw)))
    await kubectl(api.kubeconfig, "apply", "-f", str(manifest))


async def node(api: KubeApiProcess, kubectl: Run, name: str) -> dict[str, Any] | None:
    got = await kubectl(api.kubeconfig, "get", "node", name, "-o", "json", check=False)
    return json.loads(got.out) if got.rc == 0 else None


def ready(n: dict[str, Any]) -> str:
    return next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")


async def test_join_registers_a_ready_node_with_its_labels_and_a_rejoin_updates_it(
    kubeapi_process: KubeApiProcess, kubectl: Run, kubeadm: Run, tmp_path: Path
) -> None:
    api = kubeapi_process
    await add_token(api, kubectl, tmp_path, TOKEN_ID, TOKEN_SECRET)
    config = join_config(tmp_path / "join.yaml", api.endpoint, name="dpu-a", pins=[pin_of(api.kubeconfig)],
                         labels="provisioning.dpu.nvidia.com/host=host-a,rack=r1")  # fmt: skip
    joined = await kubeadm("join", "--config", str(config))
    assert joined.rc == 0, joined.err
    assert "[preflight] Running pre-flight checks" in joined.out
    assert "This node has joined the cluster:" in joined.out

    n = await node(api, kubectl, "dpu-a")
    assert n is not None
    labels = n["metadata"]["labels"]
    assert labels["provisioning.dpu.nvidia.com/host"] == "host-a" and labels["rack"] == "r1"
    assert labels["kubernetes.io/hostname"] == "dpu-a" and labels["kubernetes.io/arch"] == "arm64"
    assert ready(n) == "True"
    assert n["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.0"  # from kubeadm-config, as the cluster runs
    table = (await kubectl(api.kubeconfig, "get", "nodes", "--no-headers")).out.split()
    assert table[:2] == ["dpu-a", "Ready"]

    # a re-flashed DPU joins again under its name: the Node is taken over and updated
    config = join_config(tmp_path / "join.yaml", api.endpoint, name="dpu-a", pins=[pin_of(api.kubeconfig)],
                         labels="provisioning.dpu.nvidia.com/host=host-a,rack=r2")  # fmt: skip
    again = await kubeadm("join", "--config", str(config))
    assert again.rc == 0, again.err
    n2 = await node(api, kubectl, "dpu-a")
    assert n2 is not None and n2["metadata"]["labels"]["rack"] == "r2"
    assert n2["status"]["nodeInfo"]["bootID"] != n["status"]["nodeInfo"]["bootID"]
    assert n2["metadata"]["uid"] == n["metadata"]["uid"]


async def test_join_with_command_line_flags(
    kubeapi_process: KubeApiProcess, kubectl: Run, kubeadm: Run, tmp_path: Path
) -> None:
    api = kubeapi_process
    await add_token(api, kubectl, tmp_path, TOKEN_ID, TOKEN_SECRET)
    joined = await kubeadm("join", api.endpoint, "--token", TOKEN, "--discovery-token-ca-cert-hash",
                           pin_of(api.kubeconfig), "--node-name", "dpu-b")  # fmt: skip
    assert joined.rc == 0, joined.err
    n = await node(api, kubectl, "dpu-b")
    assert n is not None and ready(n) == "True"


async def test_join_refuses_a_server_whose_ca_is_not_pinned(
    kubeapi_process: KubeApiProcess, kubectl: Run, kubeadm: Run, tmp_path: Path
) -> None:
    api = kubeapi_process
    await add_token(api, kubectl, tmp_path, TOKEN_ID, TOKEN_SECRET)
    wrong_pin = "sha256:" + "0" * 64
    config = join_config(tmp_path / "join.yaml", api.endpoint, name="dpu-a", pins=[wrong_pin])
    failed = await kubeadm("join", "--config", str(config))
    assert failed.rc == 1
    assert (
        "error execution phase preflight: couldn't validate the identity of the API Server: cluster CA found in "
        f'cluster-info ConfigMap is invalid: none of the public keys "{pin_of(api.kubeconfig)}" are pinned'
    ) in failed.err
    assert await node(api, kubectl, "dpu-a") is None


async def test_join_fails_clearly_for_bad_tokens(
    kubeapi_process: KubeApiProcess, kubectl: Run, kubeadm: Run, tmp_path: Path
) -> None:
    api = kubeapi_process
    pin = pin_of(api.kubeconfig)
    await add_token(api, kubectl, tmp_path, TOKEN_ID, TOKEN_SECRET)
    await add_token(api, kubectl, tmp_path, "expird", TOKEN_SECRET, expires_in=-5)
    await add_token(api, kubectl, tmp_path, "noauth", TOKEN_SECRET, auth=False)  # signs cluster-info only

    cases = {
        "zzzzzz.0123456789abcdef": 'token id "zzzzzz" is invalid for this cluster or it has expired',
        "expird.0123456789abcdef": 'token id "expird" is invalid for this cluster or it has expired',
        f"{TOKEN_ID}.ffffffffffffffff": "failed to verify JWS signature of received cluster info object, can't "
        "trust this API Server",
        "noauth.0123456789abcdef": "unable to fetch the kubeadm-config ConfigMap: failed to get config map: Unauthorized",
        "not-a-token": 'discovery.bootstrapToken.token: Invalid value: "not-a-token": the bootstrap token is invalid',
    }
    for i, (token, message) in enumerate(cases.items()):
        config = join_config(tmp_path / f"join-{i}.yaml", api.endpoint, name=f"dpu-{i}", token=token, pins=[pin])
        failed = await kubeadm("join", "--config", str(config))
        assert failed.rc == 1, (token, failed.out)
        assert message in failed.err, (token, failed.err)
        assert await node(api, kubectl, f"dpu-{i}") is None


async def test_join_gives_up_on_an_unreachable_endpoint_after_the_discovery_timeout(
    kubeadm: Run, tmp_path: Path
) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    config = join_config(tmp_path / "join.yaml", endpoint, name="dpu-a", pins=["sha256:" + "0" * 64], timeout="1s")
    failed = await kubeadm("join", "--config", str(config))
    assert failed.rc == 1
    assert "[discovery] Failed to request cluster-info, will try again" in failed.err
    assert (
        "couldn't validate the identity of the API Server: failed to request the cluster-info ConfigMap: "
        f'Get "https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info": dial tcp {endpoint}: '
        "connect: connection refused"
    ) in failed.err


async def test_join_configuration_errors(kubeadm: Run, tmp_path: Path) -> None:
    no_pins = join_config(tmp_path / "join.yaml", "127.0.0.1:6443", name="dpu-a", pins=[])
    failed = await kubeadm("join", "--config", str(no_pins))
    assert failed.rc == 1 and "using token-based discovery without caCertHashes can be unsafe" in failed.err
    mixed = await kubeadm("join", "--config", str(no_pins), "--token", TOKEN)
    assert mixed.rc == 1 and "can not mix '--config' with arguments ['token']" in mixed.err
    bad_pin = join_config(tmp_path / "join2.yaml", "127.0.0.1:6443", name="dpu-a", pins=["md5:abc"])
    failed = await kubeadm("join", "--config", str(bad_pin))
    assert failed.rc == 1 and 'unknown hash format "md5"' in failed.err
