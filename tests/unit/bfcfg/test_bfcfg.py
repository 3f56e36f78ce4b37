"""bf.cfg rendering: golden files, the 128 KiB limit, refused content, and shell safety proven by running bash.

UPDATE_GOLDEN=1 rewrites the golden files from the current renderer (review the diff before committing).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from dpfd.api.provisioning import ConfigFile, DPUFlavor, DPUFlavorSpec
from dpfd.config import parse_config
from dpfd.host.bfcfg import (
    MAX_BF_CFG_SIZE,
    BfCfgContext,
    BfCfgError,
    BfCfgTooLarge,
    BfCfgUnsafeContent,
    DpuDaemonSettings,
    KubeadmJoin,
    render_bf_cfg,
)
from dpfd.host.provisioning.wiring import bf_cfg_renderer

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
REPO = HERE.parents[2]
BASH = shutil.which("bash")
CA_HASH = "sha256:" + "0123456789abcdef" * 4
JOIN_COMMAND = f"kubeadm join 10.0.110.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {CA_HASH}"
PEM_CA = "-----BEGIN CERTIFICATE-----\nTUlJQ2Fr\n-----END CERTIFICATE-----\n"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nZHB1LWNlcnQ=\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nZHB1LWtleQ==\n-----END PRIVATE KEY-----\n"


def load_flavor(path: Path) -> DPUFlavorSpec:
    return DPUFlavor.model_validate(yaml.safe_load(path.read_text())).spec


def minimal_context(**overrides: object) -> BfCfgContext:
    base: dict[str, object] = {
        "dpu_name": "worker-1-0000-03-00",
        "node_name": "worker-1",
        "dpfd": DpuDaemonSettings(etcd_endpoints=("https://10.0.110.10:2379",)),
    }
    base.update(overrides)
    return BfCfgContext.model_validate(base)


def hbn_context() -> BfCfgContext:
    return minimal_context(
        bfb_name="bf-bundle",
        bfb_version="bf-bundle-2.9.1-40_24.11_ubuntu-22.04_prod.bfb",
        join=KubeadmJoin.from_join_command(JOIN_COMMAND),
    )


def full_context() -> BfCfgContext:
    return minimal_context(
        bfb_name="bf-bundle",
        bfb_version="2.9.1",
        join=KubeadmJoin.from_join_command(
            JOIN_COMMAND, node_labels={"zone": "rack-7", "dpu.example.com/role": "storage"}, kubeadm="/usr/bin/kubeadm"
        ),
        dpfd=DpuDaemonSettings(
            etcd_endpoints=("https://10.0.110.10:2379", "https://10.0.110.11:2379"),
            ca_pem=PEM_CA,
            cert_pem=PEM_CERT,
            key_pem=PEM_KEY,
            install_command=("apt-get", "install", "-y", "dpf"),
        ),
        ubuntu_password="$6$ctxsalt$overriddenByTheFlavor",
        sf_count=3,
        control_plane_mtu=9000,
    )


GOLDEN_CASES = {
    "hbn": lambda: (load_flavor(REPO / "docs/examples/02-dpuflavor.yaml"), hbn_context()),
    "minimal": lambda: (DPUFlavorSpec(), minimal_context()),
    "full": lambda: (load_flavor(GOLDEN / "full-flavor.yaml"), full_context()),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_matches_golden_file(case: str) -> None:
    flavor, ctx = GOLDEN_CASES[case]()
    rendered = render_bf_cfg(flavor, ctx)
    golden = GOLDEN / f"{case}.bf.cfg"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_bytes(rendered)
    assert golden.exists(), f"{golden} missing: run with UPDATE_GOLDEN=1"
    assert rendered == golden.read_bytes(), f"{case}: bf.cfg differs from {golden.name} (UPDATE_GOLDEN=1 rewrites it)"


def test_same_input_gives_same_bytes() -> None:
    first = render_bf_cfg(*GOLDEN_CASES["full"]())
    # Fresh objects parsed again from the same text: nothing may depend on identity, time or hash order.
    again = render_bf_cfg(*GOLDEN_CASES["full"]())
    assert first == again


# ---------------------------------------------------------------- what the rendering holds


def test_parameters_come_first_and_password_is_lifted_into_cloud_init(tmp_path: Path) -> None:
    flavor, ctx = GOLDEN_CASES["full"]()
    text = render_bf_cfg(flavor, ctx).decode()
    body = text.split("\n\n", 1)[1]  # after the header comment
    assert body.startswith("UPDATE_DPU_OS=yes\nBD_PSIDS='MT_0000000375 MT_0000000376'\nEMPTY=\n\n")
    assert "ubuntu_PASSWORD" not in text
    root = run_modify_os(text, tmp_path)
    user_data = yaml.safe_load((root / "var/lib/cloud/seed/nocloud-net/user-data").read_text())
    assert user_data["users"][0]["passwd"] == "$6$rounds=4096$saltsalt$Y0ubpasswordhashY0ubpasswordhash"
    assert "chpasswd" not in user_data


def test_context_password_used_when_the_flavor_sets_none(tmp_path: Path) -> None:
    text = render_bf_cfg(DPUFlavorSpec(), minimal_context(ubuntu_password="$6$salt$hash")).decode()
    user_data = yaml.safe_load((run_modify_os(text, tmp_path) / "var/lib/cloud/seed/nocloud-net/user-data").read_text())
    assert user_data["users"][0]["passwd"] == "$6$salt$hash"


def test_plain_password_is_refused() -> None:
    flavor = DPUFlavorSpec(bfcfgParameters=["ubuntu_PASSWORD=hunter2"])
    with pytest.raises(BfCfgError, match=r"bfcfgParameters\[ubuntu_PASSWORD\]: must be a crypt\(3\) hash"):
        render_bf_cfg(flavor, minimal_context())


def test_minimal_flavor_writes_dpfd_config_and_no_optional_steps(tmp_path: Path) -> None:
    text = render_bf_cfg(DPUFlavorSpec(), minimal_context()).decode()
    root = run_modify_os(text, tmp_path)
    config = parse_config((root / "etc/dpf/dpfd.yaml").read_text(), "dpfd.yaml")
    assert (config.node, config.role, config.etcd.endpoints) == (
        "worker-1-0000-03-00",
        "dpu",
        ["https://10.0.110.10:2379"],
    )
    user_data = yaml.safe_load((root / "var/lib/cloud/seed/nocloud-net/user-data").read_text())
    assert user_data["hostname"] == "worker-1-0000-03-00"
    assert ["systemctl", "enable", "--now", "--no-block", "dpfd"] in user_data["runcmd"]
    assert user_data["chpasswd"]["list"] == "ubuntu:ubuntu\n"
    assert config.join is None
    assert mode(root / "etc/dpf/dpfd.yaml") == 0o600
    for absent in (
        "etc/systemd/system/kubelet.service.d",
        "opt/dpf/configure-sfs.sh",
        "opt/dpf/ovs.sh",
        "etc/default/grub.d",
    ):
        assert not (root / absent).exists(), absent
    assert "kubeadm" not in text and "update-grub" not in text and "mlxconfig" not in text
    netplan = yaml.safe_load((root / "etc/netplan/99-dpf-comm-ch.yaml").read_text())
    assert netplan["network"]["bridges"]["br-comm-ch"] == {"dhcp4": True, "mtu": 1500, "interfaces": ["pf0vf0"]}
    tmfifo = yaml.safe_load((root / "etc/netplan/98-oob-tmfifo.yaml").read_text())
    assert tmfifo["network"]["ethernets"]["tmfifo_net0"]["addresses"] == ["192.168.100.2/30"]


def test_full_flavor_files_on_the_target(tmp_path: Path) -> None:
    flavor, ctx = GOLDEN_CASES["full"]()
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/motd").write_text("Welcome\n")
    run_modify_os(render_bf_cfg(flavor, ctx).decode(), tmp_path, root=root)

    assert (root / "etc/motd").read_text() == "Welcome\nprovisioned by dpf\n"  # append
    assert (root / "opt/site/secret.conf").read_bytes() == b"no final newline"
    assert mode(root / "opt/site/secret.conf") == 0o600
    assert mode(root / "etc/dpf/pki/dpfd.key") == 0o600
    assert (root / "etc/dpf/pki/dpfd.key").read_text() == PEM_KEY
    assert (root / "etc/dpf/pki/ca.crt").read_text() == PEM_CA
    assert (root / "etc/sysctl.d/99-dpf.conf").read_text() == "net.ipv4.ip_forward=1\nvm.nr_hugepages=1024\n"
    grub = subprocess.run(
        [BASH, "-c", '. "$1"; printf %s "$GRUB_CMDLINE_LINUX"', "-", root / "etc/default/grub.d/99-dpf.cfg"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert grub.stdout == 'console=hvc0 hugepagesz=2048kB hugepages=1024 dyndbg="file drivers/net/* +p"'
    assert (root / "opt/dpf/ovs.sh").read_text().endswith("ovs-vsctl set bridge br-sfc datapath_type=netdev\n")
    assert mode(root / "opt/dpf/ovs.sh") == 0o755
    assert "PF_TOTAL_SF=3\n" in (root / "opt/dpf/configure-sfs.sh").read_text()
    assert 'capabilities = ["pull", "resolve"]' in (root / "etc/containerd/certs.d/nvcr.io/hosts.toml").read_text()
    user_data = yaml.safe_load((root / "var/lib/cloud/seed/nocloud-net/user-data").read_text())
    runcmd = user_data["runcmd"]
    assert runcmd.index(["apt-get", "install", "-y", "dpf"]) < runcmd.index(
        ["systemctl", "enable", "--now", "--no-block", "dpfd"]
    )
    assert runcmd[-3:] == [
        ["systemctl", "enable", "kubelet"],
        ["mkdir", "-p", "/etc/kubernetes", "/var/lib/kubelet"],  # writable under dpfd's ProtectSystem=strict
        ["systemctl", "enable", "--now", "--no-block", "dpfd"],
    ]
    for script in sorted((root / "opt/dpf").glob("*.sh")):
        subprocess.run([BASH, "-n", script], check=True)  # every generated script parses


def test_dpfd_config_carries_the_join_for_the_dpu_dpfd(tmp_path: Path) -> None:
    flavor, ctx = GOLDEN_CASES["full"]()
    root = tmp_path / "root"
    bluefield_drop_in = root / "usr/lib/systemd/system/kubelet.service.d/90-kubelet-bluefield.conf"
    bluefield_drop_in.parent.mkdir(parents=True)
    bluefield_drop_in.write_text("[Service]\n")
    text = render_bf_cfg(flavor, ctx).decode()
    run_modify_os(text, tmp_path, root=root)
    config = parse_config((root / "etc/dpf/dpfd.yaml").read_text(), "dpfd.yaml")
    assert mode(root / "etc/dpf/dpfd.yaml") == 0o600  # the bootstrap token
    assert config.join is not None
    assert config.join.model_dump() == {
        "api_server_endpoint": "10.0.110.10:6443",
        "token": "abcdef.0123456789abcdef",
        "ca_cert_hashes": [CA_HASH],
        "node_name": "worker-1-0000-03-00",
        "node_labels": {"dpu.example.com/role": "storage", "zone": "rack-7"},
        "kubeadm": "/usr/bin/kubeadm",
        "timeout": 300.0,
    }
    # DPF's kubelet set-up for kubeadm stays; the join script and unit are gone (dpfd joins).
    assert (root / "etc/systemd/system/kubelet.service.d/10-bf.conf").exists()
    assert not bluefield_drop_in.exists()
    assert "join_k8s_cluster" not in text and "kubeadm-join.service" not in text


def test_join_without_kubeadm_path_leaves_the_default(tmp_path: Path) -> None:
    flavor, ctx = GOLDEN_CASES["hbn"]()
    root = run_modify_os(render_bf_cfg(flavor, ctx).decode(), tmp_path)
    config = parse_config((root / "etc/dpf/dpfd.yaml").read_text(), "dpfd.yaml")
    assert config.join is not None
    assert (config.join.kubeadm, config.join.node_labels) == ("kubeadm", {})


def test_bad_join_labels_are_refused_naming_the_field() -> None:
    join = KubeadmJoin.from_join_command(JOIN_COMMAND, node_labels={"zone": "a,b"})
    with pytest.raises(BfCfgError, match=r"dpfd settings do not make a valid dpfd config: .*join\.nodeLabels.*'a,b'"):
        render_bf_cfg(DPUFlavorSpec(), minimal_context(join=join))


def test_containerd_script_points_cri_at_the_hosts_directory(tmp_path: Path) -> None:
    flavor, ctx = GOLDEN_CASES["hbn"]()
    root = run_modify_os(render_bf_cfg(flavor, ctx).decode(), tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake(bin_dir / "containerd", 'echo "containerd github.com/containerd/containerd 1.7.12 abc"')
    config = tmp_path / "config.toml"
    config.write_text(
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = ""\n'
        '[plugins."io.containerd.grpc.v1.cri".registry.auths]\n'
    )
    script = root / "opt/dpf/config-containerd.sh"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run([BASH, script, config], env=env, check=True, timeout=30)
    assert config.read_text() == (
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n'
        '[plugins."io.containerd.grpc.v1.cri".registry.auths]\n'
    )
    config.write_text("version = 2\n")
    fake(bin_dir / "containerd", 'echo "containerd github.com/containerd/containerd/v2 v2.0.2 abc"')
    subprocess.run([BASH, script, config], env=env, check=True, timeout=30)
    assert config.read_text() == (
        'version = 2\n\n[plugins."io.containerd.cri.v1.images".registry]\n  config_path = "/etc/containerd/certs.d"\n'
    )


# ---------------------------------------------------------------- shell safety, proven with bash

HOSTILE = (
    "it's a 'quoted' line\n"
    "$(touch {canary})\n"
    "`touch {canary}`\n"
    "${{HOME}} $HOME \\$ \\\\ \\n\n"
    "DPF_EOF\n"
    "DPF_EOF_1\n"
    "EOF\n"
    "  DPF_EOF_2 \n"
    "tab\there\r\n"
    "ünïcødé ✓\n"
    "\n\n"
)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(HOSTILE, id="hostile"),
        pytest.param(HOSTILE.rstrip("\n") + "\nDPF_EOF_2", id="no-final-newline-ending-in-a-delimiter"),
        pytest.param("", id="empty"),
        pytest.param("\n", id="one-newline"),
        pytest.param("   leading spaces\n", id="leading-spaces"),
    ],
)
def test_config_file_content_arrives_verbatim(tmp_path: Path, raw: str) -> None:
    canary = tmp_path / "pwned"
    raw = raw.replace("{canary}", str(canary))
    path = "/etc/we ird/$(touch x)'s `file`.conf"
    flavor = DPUFlavorSpec(
        configFiles=[ConfigFile(path=path, operation="override", raw=raw, permissions="0640")],
        ovs={"rawConfigScript": raw},
        # Shell would run these when sourcing a verbatim copy; the renderer makes them literal values.
        bfcfgParameters=[f"EVIL='$(touch {canary})'", f'TICK="`touch {canary}`"', "BARE=$(reboot)"],
    )
    text = render_bf_cfg(flavor, minimal_context()).decode()
    root = tmp_path / "root"
    run_modify_os(text, tmp_path, root=root)
    written = root / path.lstrip("/")
    assert written.read_bytes() == raw.encode()
    assert mode(written) == 0o640
    if raw:  # an empty OVS script means no OVS step
        assert (root / "opt/dpf/ovs.sh").read_bytes() == b"#!/bin/bash\nset -e\n" + raw.encode()
    else:
        assert not (root / "opt/dpf/ovs.sh").exists()
    # The installer sources bf.cfg: the parameters are literal values, nothing ran.
    values = subprocess.run(
        [BASH, "-c", '. "$1"; printf "%s|%s|%s" "$EVIL" "$TICK" "$BARE"', "-", tmp_path / "bf.cfg"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert values.stdout == f"$(touch {canary})|`touch {canary}`|$(reboot)"
    assert not canary.exists()
    assert not (tmp_path / "x").exists()


def test_delimiter_avoids_every_line_of_the_content() -> None:
    raw = "DPF_EOF\nDPF_EOF_1\nDPF_EOF_2\n"
    text = render_bf_cfg(DPUFlavorSpec(configFiles=[ConfigFile(path="/etc/x", raw=raw)]), minimal_context()).decode()
    assert "dpf_write \"$1\" /etc/x 0644 override <<'DPF_EOF_3'\n" + raw + "\nDPF_EOF_3\n" in text


# ---------------------------------------------------------------- refusals


def test_nul_byte_is_refused_naming_file_and_offset() -> None:
    flavor = DPUFlavorSpec(
        configFiles=[ConfigFile(path="/etc/ok", raw="fine\n"), ConfigFile(path="/etc/bad", raw="ab\0cd")]
    )
    with pytest.raises(
        BfCfgUnsafeContent, match=r"configFiles\[1\]\.raw \(/etc/bad\): contains a NUL byte at offset 2"
    ):
        render_bf_cfg(flavor, minimal_context())


def test_nul_in_ovs_script_and_lone_surrogate_are_refused() -> None:
    with pytest.raises(BfCfgUnsafeContent, match=r"ovs\.rawConfigScript: contains a NUL byte at offset 3"):
        render_bf_cfg(DPUFlavorSpec(ovs={"rawConfigScript": "set\0"}), minimal_context())
    with pytest.raises(BfCfgUnsafeContent, match=r"configFiles\[0\]\.raw \(/etc/s\): character 1 is not valid Unicode"):
        render_bf_cfg(DPUFlavorSpec(configFiles=[ConfigFile(path="/etc/s", raw="a\udc80")]), minimal_context())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["NOEQUALS"], r"bfcfgParameters\[0\]: 'NOEQUALS' must be KEY=VALUE with KEY a shell variable name"),
        (["rm -rf /=1"], r"bfcfgParameters\[0\]: .* must be KEY=VALUE"),
        (["A=two words"], r"bfcfgParameters\[0\]: the value of A is 2 words"),
        (["A='unterminated"], r"bfcfgParameters\[0\]: cannot parse the value of A: No closing quotation"),
    ],
)
def test_bad_bfcfg_parameters_are_refused(params: list[str], message: str) -> None:
    with pytest.raises(BfCfgError, match=message):
        render_bf_cfg(DPUFlavorSpec(bfcfgParameters=params), minimal_context())


def test_other_unsafe_values_are_refused() -> None:
    with pytest.raises(BfCfgUnsafeContent, match=r"containerdConfig\.registryEndpoint: .* must be an http\(s\) URL"):
        render_bf_cfg(DPUFlavorSpec(containerdConfig={"registryEndpoint": 'https://x"]'}), minimal_context())
    with pytest.raises(BfCfgError, match=r"grub\.kernelParameters\[1\]: 'a b' must be one non-empty word"):
        render_bf_cfg(DPUFlavorSpec(grub={"kernelParameters": ["quiet", "a b"]}), minimal_context())
    with pytest.raises(BfCfgUnsafeContent, match=r"sysctl\.parameters\[0\]: .* control character '\\n'"):
        render_bf_cfg(DPUFlavorSpec(sysctl={"parameters": ["a=1\nb=2"]}), minimal_context())
    with pytest.raises(BfCfgError, match=r"sf_count 30 exceeds the flavor's PF_TOTAL_SF=20"):
        render_bf_cfg(DPUFlavorSpec(nvconfig=[{"parameters": ["PF_TOTAL_SF=20"]}]), minimal_context(sf_count=30))


def test_endpoints_dpfd_cannot_load_are_refused() -> None:
    ctx = minimal_context(dpfd=DpuDaemonSettings(etcd_endpoints=("10.0.110.10:2379",)))
    with pytest.raises(BfCfgError, match=r"dpfd settings do not make a valid dpfd config: .*must be a URL"):
        render_bf_cfg(DPUFlavorSpec(), ctx)


def test_join_command_parsing() -> None:
    join = KubeadmJoin.from_join_command(JOIN_COMMAND + " ")
    assert (join.api_server_endpoint, join.token, join.ca_cert_hashes) == (
        "10.0.110.10:6443",
        "abcdef.0123456789abcdef",
        (CA_HASH,),
    )
    with pytest.raises(BfCfgError, match="join command: token: String should match pattern"):
        KubeadmJoin.from_join_command(JOIN_COMMAND.replace("abcdef.", "ABCDEF;"))
    with pytest.raises(BfCfgError, match="unsupported argument '--control-plane'"):
        KubeadmJoin.from_join_command(JOIN_COMMAND + " --control-plane")


# ---------------------------------------------------------------- the 128 KiB limit


def flavor_with_files(sizes: list[int]) -> DPUFlavorSpec:
    return DPUFlavorSpec(configFiles=[ConfigFile(path=f"/etc/f{i}", raw="x" * n) for i, n in enumerate(sizes)])


def test_exactly_the_limit_passes_and_one_byte_more_is_refused() -> None:
    base = len(render_bf_cfg(flavor_with_files([1000, 0]), minimal_context())) - 1000
    fits = MAX_BF_CFG_SIZE - base
    assert len(render_bf_cfg(flavor_with_files([fits, 0]), minimal_context())) == MAX_BF_CFG_SIZE
    with pytest.raises(BfCfgTooLarge) as err:
        render_bf_cfg(flavor_with_files([fits, 1]), minimal_context())
    assert (err.value.size, err.value.limit) == (MAX_BF_CFG_SIZE + 1, 131072)


def test_too_large_names_the_largest_contributors() -> None:
    flavor = flavor_with_files([30_000, 120_000, 10])
    with pytest.raises(BfCfgTooLarge) as err:
        render_bf_cfg(flavor, minimal_context())
    labels = [label for label, _ in err.value.contributors]
    assert labels[:2] == ["configFiles[1] (/etc/f1)", "configFiles[0] (/etc/f0)"]
    assert err.value.contributors[0][1] > 120_000
    message = str(err.value)
    assert f"bf.cfg for DPU worker-1-0000-03-00 is {err.value.size} bytes, over the 131072-byte limit" in message
    assert "largest parts: configFiles[1] (/etc/f1) 120" in message


# ---------------------------------------------------------------- helpers


def run_modify_os(text: str, tmp_path: Path, *, root: Path | None = None) -> Path:
    """Source the rendered bf.cfg in bash, as the installer does, and write the DPU's files under `root`."""
    assert BASH is not None
    root = root or tmp_path / "root"
    root.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "bf.cfg"
    cfg.write_text(text)
    subprocess.run(
        [BASH, "-c", 'set -e; . "$1"; dpf_write_target_os "$2"', "-", cfg, root],
        check=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}, timeout=60,
    )  # fmt: skip
    return root


def fake(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("intent_mtu", "netplan_mtu"), [(1400, 1400), (None, 1500)])
def test_host_renderer_takes_the_control_plane_mtu_from_the_intent(
    tmp_path: Path, intent_mtu: int | None, netplan_mtu: int
) -> None:
    """The controller carries the DPFOperatorConfig's networking.controlPlaneMTU in the intent's context; the host's
    renderer puts it on the DPU's br-comm-ch (DPF's default 1500 when there is no DPFOperatorConfig)."""
    render = bf_cfg_renderer(DpuDaemonSettings(etcd_endpoints=("https://10.0.110.10:2379",)))
    ctx: dict[str, object] = {"dpuName": "worker-1-0000-03-00", "nodeName": "worker-1"}
    if intent_mtu is not None:
        ctx["controlPlaneMTU"] = intent_mtu
    root = run_modify_os(render({}, ctx).decode(), tmp_path)
    netplan = yaml.safe_load((root / "etc/netplan/99-dpf-comm-ch.yaml").read_text())
    assert netplan["network"]["bridges"]["br-comm-ch"]["mtu"] == netplan_mtu
