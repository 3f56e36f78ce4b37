"""The emulated `kubeadm join`: token discovery against the emulated API server, then the Node registration
the kubelet would do.

    python -m dpfd.sim.kubeadm join --config FILE
    python -m dpfd.sim.kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash sha256:H [--node-name N]

FILE is a kubeadm.k8s.io/v1beta3 (or v1beta4) JoinConfiguration. Like kubeadm it fetches kube-public/cluster-info
over TLS without verification (retrying until the discovery timeout), checks the token's JWS signature on it and
the CA against the pinned public-key hashes, fetches it again verified by that CA, reads kubeadm-config with the
bootstrap token, and registers the Node (labels from kubeletExtraArgs node-labels, condition Ready=True). The TLS
bootstrap and the kubelet itself are folded into that registration. Output and errors read like kubeadm's; any
failure exits 1.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dpfd.sim import bootstrap_tokens as bootstrap

API_VERSIONS = ("kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4")
DEFAULT_DISCOVERY_TIMEOUT = 300.0  # kubeadm's 5m0s
REQUEST_TIMEOUT = 10.0
RETRY_INTERVAL = 1.0  # seconds between discovery attempts (kubeadm retries cluster-info every few seconds)
CLUSTER_INFO_PATH = f"/api/v1/namespaces/{bootstrap.CLUSTER_INFO_NAMESPACE}/configmaps/{bootstrap.CLUSTER_INFO_NAME}"
KUBEADM_CONFIG_PATH = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
# What a BlueField's kubelet reports (DOCA's Ubuntu on Arm).
NODE_INFO = {
    "architecture": "arm64",
    "operatingSystem": "linux",
    "osImage": "Ubuntu 22.04.5 LTS",
    "kernelVersion": "5.15.0-1060-bluefield",
    "containerRuntimeVersion": "containerd://1.7.24",
}
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"


class JoinError(Exception):
    """A failed join: `phase` is kubeadm's phase name, the message what kubeadm would print."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase


@dataclass
class JoinSettings:
    endpoint: str
    discovery_token: str
    tls_bootstrap_token: str
    ca_cert_hashes: list[str]
    unsafe_skip_ca_verification: bool = False
    node_name: str = ""
    node_labels: dict[str, str] = field(default_factory=dict)
    node_ip: str = ""
    taints: list[dict[str, Any]] | None = None
    discovery_timeout: float = DEFAULT_DISCOVERY_TIMEOUT


# ---------------------------------------------------------------- configuration


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(h|m|s|ms|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float:
    """A Go duration ("5m0s", "30s", "1h30m") in seconds."""
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f'time: invalid duration "{text}"')
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def parse_node_labels(text: str) -> dict[str, str]:
    """kubelet's --node-labels: `k=v,k2=v2`."""
    labels: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise ValueError(f"invalid node labels {text!r}: {item!r} is not of the form key=value")
        labels[key] = value
    return labels


def _extra_args(registration: dict[str, Any]) -> dict[str, str]:
    """kubeletExtraArgs: a map in v1beta3, a list of {name, value} in v1beta4."""
    raw = registration.get("kubeletExtraArgs") or {}
    if isinstance(raw, list):
        return {str(a.get("name", "")): str(a.get("value", "")) for a in raw if isinstance(a, dict)}
    return {str(k): str(v) for k, v in raw.items()}


def settings_from_config(path: Path) -> JoinSettings:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except OSError as e:
        raise JoinError("preflight", f"unable to read config from {str(path)!r} : {e.strerror}") from e
    except yaml.YAMLError as e:
        raise JoinError("preflight", f"unable to decode config from {str(path)!r}: {e}") from e
    join = None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "JoinConfiguration":
            if doc.get("apiVersion") not in API_VERSIONS:
                raise JoinError(
                    "preflight", f'no kind "JoinConfiguration" is registered for version "{doc.get("apiVersion")}"'
                )
            join = doc
    if join is None:
        raise JoinError("preflight", f"no JoinConfiguration kind was found in {str(path)!r}")
    discovery = join.get("discovery") or {}
    token_discovery = discovery.get("bootstrapToken") or {}
    if not token_discovery:
        raise JoinError("preflight", 'discovery: Invalid value: "": bootstrapToken or file must be set')
    token = str(token_discovery.get("token") or "")
    registration = join.get("nodeRegistration") or {}
    extra = _extra_args(registration)
    timeout_text = str(discovery.get("timeout") or (join.get("timeouts") or {}).get("discovery") or "5m0s")
    try:
        timeout = parse_duration(timeout_text)
        labels = parse_node_labels(extra.get("node-labels", ""))
    except ValueError as e:
        raise JoinError("preflight", str(e)) from e
    return JoinSettings(
        endpoint=str(token_discovery.get("apiServerEndpoint") or ""),
        discovery_token=token,
        tls_bootstrap_token=str(discovery.get("tlsBootstrapToken") or token),
        ca_cert_hashes=[str(h) for h in token_discovery.get("caCertHashes") or []],
        unsafe_skip_ca_verification=bool(token_discovery.get("unsafeSkipCAVerification")),
        node_name=str(registration.get("name") or ""),
        node_labels=labels,
        node_ip=extra.get("node-ip", ""),
        taints=registration.get("taints"),
        discovery_timeout=timeout,
    )


def validate(s: JoinSettings) -> None:
    """kubeadm's checks of a JoinConfiguration before it contacts anything."""
    if not s.endpoint:
        raise JoinError(
            "preflight", 'discovery.bootstrapToken.apiServerEndpoint: Invalid value: "": endpoint is required'
        )
    for field_name, token in (("token", s.discovery_token), ("tlsBootstrapToken", s.tls_bootstrap_token)):
        if bootstrap.parse_token(token) is None:
            raise JoinError(
                "preflight",
                f'discovery.bootstrapToken.{field_name}: Invalid value: "{token}": the bootstrap token is invalid',
            )
    if not s.ca_cert_hashes and not s.unsafe_skip_ca_verification:
        raise JoinError(
            "preflight",
            'discovery.bootstrapToken.caCertHashes: Invalid value: "": using token-based discovery without '
            "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass "
            "--discovery-token-unsafe-skip-ca-verification flag to continue",
        )
    for pin in s.ca_cert_hashes:
        problem = pin_format_problem(pin)
        if problem is not None:
            raise JoinError("preflight", f'discovery.bootstrapToken.caCertHashes: Invalid value: "{pin}": {problem}')


# ---------------------------------------------------------------- public key pins


def ca_pin(cert: x509.Certificate) -> str:
    """kubeadm's pin of a CA: sha256 of its DER SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def pin_format_problem(pin: str) -> str | None:
    kind, sep, value = pin.partition(":")
    if not sep:
        return 'invalid hash, expected "format:hex-value". Known format(s) are: sha256'
    if kind != "sha256":
        return f'unknown hash format "{kind}". Known format(s) are: sha256'
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return f"public key hash is not 32 bytes (should be 64 hex characters, got {len(value)})"
    return None


# ---------------------------------------------------------------- HTTP


class HttpError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _request(
    url: str, context: ssl.SSLContext, *, method: str = "GET", token: str = "", body: Any = None, content_type: str = ""
) -> dict[str, Any]:
    headers = {"Accept": "application/json", "User-Agent": "kubeadm/v1.32.0 (linux/arm64) dpf-sim"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = content_type or "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT, context=context) as resp:
            doc = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        reason, message = "", raw.decode("utf-8", "replace")[:300] or str(e.reason)
        try:
            status = json.loads(raw)
            reason, message = str(status.get("reason", "")), str(status.get("message", message))
        except ValueError:
            pass
        raise HttpError(e.code, reason, message) from e
    return doc if isinstance(doc, dict) else {}


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _verified_context(ca_pem: bytes) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem.decode())


def _describe(e: BaseException, url: str) -> str:
    """Go's client error shape: `Get "URL": dial tcp ...: connection refused`."""
    if isinstance(e, urllib.error.URLError):
        inner = e.reason
        if isinstance(inner, ConnectionRefusedError):
            return f'Get "{url}": dial tcp {url.split("/")[2]}: connect: connection refused'
        return f'Get "{url}": {inner}'
    return f'Get "{url}": {e}'


# ---------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Discovered:
    server: str
    ca_pem: bytes


def _cluster_info_kubeconfig(cm: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    content = (cm.get("data") or {}).get("kubeconfig")
    if not isinstance(content, str):
        raise JoinError(
            "preflight",
            "couldn't validate the identity of the API Server: there is no kubeconfig in the cluster-info ConfigMap",
        )
    config = yaml.safe_load(content)
    clusters = (config or {}).get("clusters") or []
    if not clusters:
        raise JoinError(
            "preflight",
            "couldn't validate the identity of the API Server: malformed kubeconfig in the cluster-info ConfigMap: no clusters",
        )
    return content, clusters[0].get("cluster") or {}


def discover(s: JoinSettings, log: Any) -> Discovered:
    token_id, token_secret = bootstrap.parse_token(s.discovery_token) or ("", "")
    url = f"https://{s.endpoint}{CLUSTER_INFO_PATH}"
    deadline = time.monotonic() + s.discovery_timeout
    while True:
        try:
            cm = _request(url, _insecure_context())
            break
        except (OSError, HttpError) as e:
            why = _describe(e, url) if isinstance(e, OSError) else str(e)
            if time.monotonic() >= deadline:
                raise JoinError(
                    "preflight",
                    f"couldn't validate the identity of the API Server: failed to request the cluster-info ConfigMap: {why}",
                ) from e
            log(f"[discovery] Failed to request cluster-info, will try again: {why}")
            time.sleep(RETRY_INTERVAL)
    content, cluster = _cluster_info_kubeconfig(cm)
    signature = (cm.get("data") or {}).get(bootstrap.JWS_PREFIX + token_id)
    if not signature:
        raise JoinError(
            "preflight",
            f'couldn\'t validate the identity of the API Server: token id "{token_id}" is invalid for this cluster or '
            'it has expired. Use "kubeadm token create" on the control-plane node to create a new valid token',
        )
    if not bootstrap.signature_valid(content, str(signature), token_id, token_secret):
        raise JoinError(
            "preflight",
            "couldn't validate the identity of the API Server: failed to verify JWS signature of received cluster "
            "info object, can't trust this API Server",
        )
    try:
        ca_pem = base64.b64decode(str(cluster.get("certificate-authority-data", "")))
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as e:
        raise JoinError(
            "preflight", f"couldn't validate the identity of the API Server: bad CA in cluster-info: {e}"
        ) from e
    if s.ca_cert_hashes:
        actual = ca_pin(ca)
        if actual.lower() not in {p.lower() for p in s.ca_cert_hashes}:
            raise JoinError(
                "preflight",
                "couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is "
                f'invalid: none of the public keys "{actual}" are pinned',
            )
        log(f"[discovery] Cluster info signature and contents are valid and CA pin {actual} matches")
    else:
        log(
            "[discovery] Cluster info signature and contents are valid and no TLS pinning was specified, will use API Server"
        )
    # Fetch again, trusting only the discovered CA: the server must prove it holds the CA's certificate.
    try:
        again = _request(url, _verified_context(ca_pem))
    except (OSError, HttpError) as e:
        why = _describe(e, url) if isinstance(e, OSError) else str(e)
        raise JoinError("preflight", f"couldn't validate the identity of the API Server: {why}") from e
    if _cluster_info_kubeconfig(again)[1] != cluster:
        raise JoinError(
            "preflight",
            "couldn't validate the identity of the API Server: cluster info changed between the insecure and the "
            "secure request: CA or server",
        )
    return Discovered(f"https://{s.endpoint}", ca_pem)


# ---------------------------------------------------------------- the Node


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_object(s: JoinSettings, name: str) -> dict[str, Any]:
    labels = {
        "beta.kubernetes.io/arch": NODE_INFO["architecture"],
        "beta.kubernetes.io/os": NODE_INFO["operatingSystem"],
        "kubernetes.io/arch": NODE_INFO["architecture"],
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": NODE_INFO["operatingSystem"],
        **s.node_labels,
    }
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": CRI_SOCKET,
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {},
    }
    if s.taints:
        node["spec"]["taints"] = s.taints
    return node


def node_status(s: JoinSettings, name: str, kubelet_version: str) -> dict[str, Any]:
    now = _now()

    def cond(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    addresses = [{"type": "Hostname", "address": name}]
    if s.node_ip:
        addresses.insert(0, {"type": "InternalIP", "address": s.node_ip})
    resources = {"cpu": "16", "memory": "32609756Ki", "pods": "110", "ephemeral-storage": "122060736Ki"}
    return {
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": addresses,
        "capacity": resources,
        "allocatable": resources,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            **NODE_INFO,
            "machineID": hashlib.md5(name.encode(), usedforsecurity=False).hexdigest(),
            "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
            "bootID": str(uuid.uuid4()),
            "kubeletVersion": kubelet_version,
            "kubeProxyVersion": kubelet_version,
        },
    }


def register_node(s: JoinSettings, found: Discovered, kubelet_version: str) -> None:
    """What the kubelet does once bootstrapped: create its Node (or take over the existing one of that name,
    as a re-flashed DPU does) and post its status."""
    context = _verified_context(found.ca_pem)
    token = s.tls_bootstrap_token
    name = s.node_name
    node = node_object(s, name)
    try:
        try:
            _request(f"{found.server}/api/v1/nodes", context, method="POST", token=token, body=node)
        except HttpError as e:
            if e.status != 409:
                raise
            patch = {"metadata": node["metadata"], "spec": node["spec"]}
            _request(
                f"{found.server}/api/v1/nodes/{name}", context, method="PATCH", token=token, body=patch,
                content_type="application/merge-patch+json",
            )  # fmt: skip
        _request(
            f"{found.server}/api/v1/nodes/{name}/status", context, method="PATCH", token=token,
            body={"status": node_status(s, name, kubelet_version)}, content_type="application/merge-patch+json",
        )  # fmt: skip
    except HttpError as e:
        raise JoinError("kubelet-start", f'cannot register Node "{name}": {e}') from e
    except OSError as e:
        raise JoinError("kubelet-start", f'cannot register Node "{name}": {_describe(e, found.server)}') from e


def kubelet_version_of(kubeadm_config: dict[str, Any]) -> str:
    text = (kubeadm_config.get("data") or {}).get("ClusterConfiguration") or ""
    version = (yaml.safe_load(text) or {}).get("kubernetesVersion") if text else None
    return str(version or "v1.32.0")


def join(s: JoinSettings, out: Any = sys.stdout, err: Any = sys.stderr) -> None:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    def log(line: str) -> None:
        print(line, file=err, flush=True)

    validate(s)
    if not s.node_name:
        s.node_name = os.uname().nodename.lower()
    say("[preflight] Running pre-flight checks")
    found = discover(s, log)
    say("[preflight] Reading configuration from the cluster...")
    say("[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'")
    try:
        kubeadm_config = _request(
            found.server + KUBEADM_CONFIG_PATH, _verified_context(found.ca_pem), token=s.tls_bootstrap_token
        )
    except HttpError as e:
        raise JoinError(
            "preflight", f"unable to fetch the kubeadm-config ConfigMap: failed to get config map: {e}"
        ) from e
    except OSError as e:
        raise JoinError(
            "preflight", f"unable to fetch the kubeadm-config ConfigMap: {_describe(e, found.server)}"
        ) from e
    say('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
    say('[kubelet-start] Writing kubelet environment file with flags to file "/var/lib/kubelet/kubeadm-flags.env"')
    say("[kubelet-start] Starting the kubelet")
    say("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap...")
    register_node(s, found, kubelet_version_of(kubeadm_config))
    say("")
    say("This node has joined the cluster:")
    say("* Certificate signing request was sent to apiserver and a response was received.")
    say("* The Kubelet was informed of the new secure connection details.")
    say("")
    say("Run 'kubectl get nodes' on the control-plane to see this node join the cluster.")
    say("")


# ---------------------------------------------------------------- command line


FLAGS_EXCLUSIVE_WITH_CONFIG = ("token", "discovery_token_ca_cert_hash", "discovery_token_unsafe_skip_ca_verification")


def settings_from_args(args: argparse.Namespace) -> JoinSettings:
    if args.config:
        mixed = [name.replace("_", "-") for name in FLAGS_EXCLUSIVE_WITH_CONFIG if getattr(args, name)]
        if args.endpoint:
            mixed.insert(0, "api-server-endpoint")
        if mixed:
            raise JoinError("preflight", f"can not mix '--config' with arguments {mixed}")
        s = settings_from_config(Path(args.config))
    else:
        s = JoinSettings(
            endpoint=args.endpoint or "",
            discovery_token=args.token or "",
            tls_bootstrap_token=args.token or "",
            ca_cert_hashes=list(args.discovery_token_ca_cert_hash or []),
            unsafe_skip_ca_verification=args.discovery_token_unsafe_skip_ca_verification,
        )
    if args.node_name:
        s.node_name = args.node_name
    return s


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeadm", description="emulated kubeadm (join only)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("join", help="join this machine to a cluster")
    p.add_argument("endpoint", nargs="?", help="HOST:PORT of the API server")
    p.add_argument("--config")
    p.add_argument("--token")
    p.add_argument("--discovery-token-ca-cert-hash", action="append")
    p.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true")
    p.add_argument("--node-name")
    p.add_argument("--v", "-v", default="0", help="verbosity (accepted, ignored)")
    args = parser.parse_args(argv)
    try:
        join(settings_from_args(args))
    except JoinError as e:
        print(f"error execution phase {e.phase}: {e}\n{STACK_HINT}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
