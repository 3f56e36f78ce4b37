"""The credential family's pure parts: renewal times (DPF's expiration.go), the Secret's data as DPF writes it,
the host's access data from a kubeconfig, the Ready summary and the reference strings of the status."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from controller.credentials.access import AccessError, ClusterAccess, host_access_from_kubeconfig
from controller.credentials.conditions import error, status_patch, summary, true
from controller.credentials.refs import duration_seconds, ref_string, split_ref
from controller.credentials.rotation import MAX_TTL, next_refresh, requires_refresh
from controller.credentials.secretdata import has_keys_of, kubeconfig_data, secret_data, token_file_data
from controller.kube.objects import ObjKey

ISSUED = 1_700_000_000.0
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


# -- renewal ----------------------------------------------------------------------------------------
def test_a_ten_minute_token_is_renewed_after_eight_minutes_less_the_jitter() -> None:
    expires = ISSUED + 600
    assert not requires_refresh(expires, ISSUED, ISSUED + 479, draw=0.0)
    assert not requires_refresh(expires, ISSUED, ISSUED + 480, draw=0.0)  # "after", not "at"
    assert requires_refresh(expires, ISSUED, ISSUED + 481, draw=0.0)
    # up to 10 s earlier with the jitter, truncated to whole seconds as Go does
    assert requires_refresh(expires, ISSUED, ISSUED + 472, draw=0.99)
    assert not requires_refresh(expires, ISSUED, ISSUED + 472, draw=0.85)


def test_the_next_look_is_at_eighty_percent_plus_up_to_ten_seconds() -> None:
    expires = ISSUED + 3600
    assert next_refresh(expires, ISSUED, draw=0.0) == ISSUED + 2880
    assert next_refresh(expires, ISSUED, draw=0.999) == ISSUED + 2889
    for draw in (0.0, 0.5, 0.999):  # at that look the token is due, whatever the jitter of either draw
        at = next_refresh(expires, ISSUED, draw) + 0.001
        assert all(requires_refresh(expires, ISSUED, at, d) for d in (0.0, 0.5, 0.999))


def test_a_long_lived_token_is_renewed_when_it_turns_a_day_old() -> None:
    expires = ISSUED + 7 * 24 * 3600
    assert next_refresh(expires, ISSUED, draw=0.0) == ISSUED + MAX_TTL
    assert not requires_refresh(expires, ISSUED, ISSUED + MAX_TTL - 11, draw=0.0)
    assert requires_refresh(expires, ISSUED, ISSUED + MAX_TTL + 1, draw=0.0)


# -- the Secret's data ------------------------------------------------------------------------------
def test_kubeconfig_as_clientcmd_writes_it() -> None:
    access = ClusterAccess("dpu-cplane", "https://10.0.0.5:6443", CA)
    data = kubeconfig_data(access, "ovn-kubernetes", "ovn-dpu", "tok.en.x")
    assert list(data) == ["kubeconfig"]
    text = data["kubeconfig"].decode()
    config = yaml.safe_load(text)
    assert config == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dpu-cplane", "cluster": {
            "server": "https://10.0.0.5:6443", "certificate-authority-data": base64.b64encode(CA).decode()}}],
        "contexts": [{"name": "ovn-dpu", "context": {
            "cluster": "dpu-cplane", "namespace": "ovn-kubernetes", "user": "ovn-dpu"}}],
        "current-context": "ovn-dpu",
        "preferences": {},
        "users": [{"name": "ovn-dpu", "user": {"token": "tok.en.x"}}],
    }  # fmt: skip
    assert [line.split(":")[0] for line in text.splitlines() if not line.startswith((" ", "-"))] == [
        "apiVersion", "clusters", "contexts", "current-context", "kind", "preferences", "users",
    ]  # fmt: skip


def test_token_file_keys() -> None:
    data = token_file_data(ClusterAccess("incluster", "https://[fd00::1]:6443", CA), "tok")
    assert data == {
        "KUBERNETES_SERVICE_HOST": b"fd00::1",
        "KUBERNETES_SERVICE_PORT": b"6443",
        "KUBERNETES_CA_DATA": CA,
        "TOKEN_FILE": b"tok",
    }
    assert token_file_data(ClusterAccess("x", "https://api.example", CA), "t")["KUBERNETES_SERVICE_PORT"] == b""
    with pytest.raises(ValueError, match="unsupported secret type: env"):
        secret_data("env", ClusterAccess("x", "https://a:1", CA), "ns", "sa", "t")


def test_has_keys_of_the_type() -> None:
    token_file = {k: "x" for k in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_CA_DATA",
                                   "TOKEN_FILE")}  # fmt: skip
    assert has_keys_of("tokenFile", token_file)
    assert not has_keys_of("kubeconfig", token_file)
    assert has_keys_of("kubeconfig", {"kubeconfig": "x"})
    assert not has_keys_of("kubeconfig", None)
    assert not has_keys_of("tokenFile", {"TOKEN_FILE": "x"})


def test_host_access_from_the_controllers_kubeconfig(tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "b",
        "clusters": [{"name": "one", "cluster": {"server": "https://a:1"}},
                     {"name": "two", "cluster": {"server": "https://b:2",
                                                 "certificate-authority-data": base64.b64encode(CA).decode()}}],
        "contexts": [{"name": "a", "context": {"cluster": "one"}}, {"name": "b", "context": {"cluster": "two"}}],
    }  # fmt: skip
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    assert host_access_from_kubeconfig(path) == ClusterAccess("incluster", "https://b:2", CA)
    (tmp_path / "ca.crt").write_bytes(CA)
    config["clusters"][1]["cluster"] = {"server": "https://b:2", "certificate-authority": "ca.crt"}
    path.write_text(yaml.safe_dump(config))
    assert host_access_from_kubeconfig(path).ca_pem == CA
    config["current-context"] = "nowhere"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(AccessError, match="no current context"):
        host_access_from_kubeconfig(path)


# -- status -----------------------------------------------------------------------------------------
def test_ready_summary_as_dpf_sets_it() -> None:
    assert summary([true("ServiceAccountReconciled", 2), true("SecretReconciled", 2)], 2).status == "True"
    down = summary([error("ServiceAccountReconciled", 2, "boom"), true("SecretReconciled", 2)], 2)
    assert (down.status, down.reason) == ("False", "Pending")  # SetSummary does not rank "Error"
    assert down.message == "The following conditions are not ready:\n* ServiceAccountReconciled"
    assert error("SecretReconciled", 1, "x").message == "Error occurred: x"


def test_status_patch_is_none_when_nothing_changes() -> None:
    obj = {"metadata": {"name": "r", "generation": 3}, "status": {}}
    fields = {"serviceAccount": "default/sa", "secret": None}
    patch = status_patch(obj, [true("ServiceAccountReconciled", 3)], fields)
    assert patch is not None
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "ServiceAccountReconciled"]
    assert patch["observedGeneration"] == 3 and patch["serviceAccount"] == "default/sa"
    obj["status"] = {k: v for k, v in patch.items() if v is not None}
    assert status_patch(obj, [true("ServiceAccountReconciled", 3)], fields) is None


def test_references_and_duration() -> None:
    assert ref_string({"name": "sa"}) == "default/sa"  # NamespacedName.GetNamespace(): "default"
    assert ref_string({"name": "sa", "namespace": "x"}) == "x/sa"
    assert ref_string(None) is None
    assert split_ref("x/sa") == ObjKey("x", "sa")
    assert split_ref(None) is None
    assert duration_seconds({"duration": "1h30m"}) == 5400
    assert duration_seconds({"duration": "10m0.5s"}) == 600
    assert duration_seconds({}) is None
