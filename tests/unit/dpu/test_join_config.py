"""The join settings in dpfd.yaml and the kubeadm JoinConfiguration rendered from them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from dpfd.config import ConfigError, parse_config
from dpfd.dpu.join_config import render_join_configuration, write_join_configuration
from dpfd.dpu.settings import JoinSettings

CA_HASH = "sha256:" + "0123456789abcdef" * 4
JOIN = {
    "apiServerEndpoint": "10.0.110.10:6443",
    "token": "abcdef.0123456789abcdef",
    "caCertHashes": [CA_HASH],
    "nodeName": "worker-1-0000-03-00",
    "nodeLabels": {"zone": "a", "dpu.example.com/role": "storage"},
}


def dpu_config(join: dict[str, object] | None) -> str:
    data: dict[str, object] = {"node": "worker-1-0000-03-00", "role": "dpu", "etcd": {"endpoints": ["http://e:2379"]}}
    if join is not None:
        data["join"] = join
    return yaml.safe_dump(data)


def test_join_section_parses_with_defaults() -> None:
    config = parse_config(dpu_config(JOIN), "dpfd.yaml")
    assert config.join is not None
    assert config.join.api_server_endpoint == "10.0.110.10:6443"
    assert config.join.ca_cert_hashes == [CA_HASH]
    assert config.join.node_labels == {"zone": "a", "dpu.example.com/role": "storage"}
    assert (config.join.kubeadm, config.join.timeout) == ("kubeadm", 300.0)
    assert parse_config(dpu_config(None), "dpfd.yaml").join is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"token": "ABCDEF.0123456789abcdef"}, r"field 'join\.token': String should match pattern"),
        ({"caCertHashes": []}, r"field 'join\.caCertHashes': List should have at least 1 item"),
        ({"caCertHashes": ["md5:00"]}, r"'md5:00' is not a CA pin like sha256:<64 hex digits>"),
        ({"apiServerEndpoint": "https://x:6443"}, r"field 'join\.apiServerEndpoint': String should match pattern"),
        ({"nodeLabels": {"bad key!": "x"}}, r"label key 'bad key!': name part must consist of"),
        ({"nodeLabels": {"k": "a,b"}}, r"label 'k' value 'a,b': a valid label must be"),
        ({"nodeName": "Not_A_Name"}, r"field 'join\.nodeName': .*'Not_A_Name': a lowercase RFC 1123 subdomain"),
        ({"tokenn": "x"}, r"field 'join\.tokenn': unknown field"),
    ],
)
def test_bad_join_settings_are_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^dpfd\.yaml: " + f"(.*){message}"):
        parse_config(dpu_config({**JOIN, **change}), "dpfd.yaml")


def test_join_configuration_has_kubeadm_v1beta3_fields() -> None:
    settings = JoinSettings.model_validate(JOIN)
    doc = yaml.safe_load(render_join_configuration(settings, "worker-1-0000-03-00"))
    assert doc == {
        "apiVersion": "kubeadm.k8s.io/v1beta3",
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": "10.0.110.10:6443",
                "token": "abcdef.0123456789abcdef",
                "caCertHashes": [CA_HASH],
            }
        },
        "nodeRegistration": {
            "name": "worker-1-0000-03-00",
            # kubelet's --node-labels syntax, keys sorted
            "kubeletExtraArgs": {"node-labels": "dpu.example.com/role=storage,zone=a"},
        },
    }


def test_no_labels_means_no_kubelet_extra_args() -> None:
    settings = JoinSettings.model_validate({**JOIN, "nodeLabels": {}})
    doc = yaml.safe_load(render_join_configuration(settings, "dpu-a"))
    assert doc["nodeRegistration"] == {"name": "dpu-a"}


def test_same_settings_same_bytes() -> None:
    labels = {"zone": "a", "dpu.example.com/role": "storage"}
    reordered = {**JOIN, "nodeLabels": dict(reversed(labels.items()))}
    a = render_join_configuration(JoinSettings.model_validate({**JOIN, "nodeLabels": labels}), "n")
    assert a == render_join_configuration(JoinSettings.model_validate(reordered), "n")


def test_written_file_is_private(tmp_path: Path) -> None:
    path = write_join_configuration(tmp_path / "state/kubeadm/join.yaml", JoinSettings.model_validate(JOIN), "n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "abcdef.0123456789abcdef" in path.read_text()
