"""The fixed text of a DPU's bf.cfg: shell helpers, scripts and systemd units (after DPF's bf.cfg.template).

Nothing here holds user text. `dpfd.host.bfcfg` fills the few `{placeholders}` with values it has validated
and shell-quoted, and carries every user-supplied file through `dpf_write` heredocs.
"""

from __future__ import annotations

from typing import Final

# Where files land on the DPU, relative to its root file system.
CLOUD_DATASOURCE_CFG: Final = "/etc/cloud/cloud.cfg.d/90-dpf.cfg"
USER_DATA: Final = "/var/lib/cloud/seed/nocloud-net/user-data"
NETPLAN_MLNX: Final = "/etc/netplan/60-mlnx.yaml"
NETPLAN_OOB_TMFIFO: Final = "/etc/netplan/98-oob-tmfifo.yaml"
NETPLAN_COMM_CH: Final = "/etc/netplan/99-dpf-comm-ch.yaml"
MODULES_BR_NETFILTER: Final = "/etc/modules-load.d/br_netfilter.conf"
SYSCTL_KUBERNETES: Final = "/etc/sysctl.d/90-dpf-kubernetes.conf"
SYSCTL_FLAVOR: Final = "/etc/sysctl.d/99-dpf.conf"
GRUB_DROP_IN: Final = "/etc/default/grub.d/99-dpf.cfg"
RESOLVED_DROP_IN: Final = "/etc/systemd/resolved.conf.d/01-dpf.conf"
NETWORKMANAGER_DROP_IN: Final = "/etc/NetworkManager/conf.d/90-dpf.conf"
SFS_SCRIPT: Final = "/opt/dpf/configure-sfs.sh"
SFS_UNIT: Final = "/etc/systemd/system/bootstrap-dpf.service"
NVCONFIG_SCRIPT: Final = "/opt/dpf/set-nvconfig-params.sh"
OVS_SCRIPT: Final = "/opt/dpf/ovs.sh"
CONTAINERD_HOSTS: Final = "/etc/containerd/certs.d/nvcr.io/hosts.toml"
CONTAINERD_SCRIPT: Final = "/opt/dpf/config-containerd.sh"
DPFD_CONFIG: Final = "/etc/dpf/dpfd.yaml"
DPFD_PROVENANCE: Final = "/etc/dpf/provisioning.json"
DPFD_PKI_DIR: Final = "/etc/dpf/pki"
DPFD_GOSSIP_KEY: Final = "/etc/dpf/gossip.key"
KUBELET_DROP_IN: Final = "/etc/systemd/system/kubelet.service.d/10-bf.conf"
# The BlueField image's kubelet drop-in that fights kubeadm's; DPF removes it before joining.
KUBELET_BLUEFIELD_DROP_IN: Final = "/usr/lib/systemd/system/kubelet.service.d/90-kubelet-bluefield.conf"

# The device DPF creates scalable functions on (PF0 as the DPU's Arm cores see it).
SF_DEVICE: Final = "0000:03:00.0"

HEADER: Final = """\
# bf.cfg for DPU {dpu} (host node {node}){bfb}, rendered by dpf.
# The BFB installer sources this file: the assignments below are its settings, bfb_modify_os() writes the
# DPU's files into the installed root file system (mounted at /mnt), cloud-init finishes on first boot.
"""

# `dpf_write ROOT PATH MODE OPERATION` puts its stdin (a quoted heredoc: no expansion at all) into ROOT/PATH.
# Every heredoc carries one newline more than the file holds and dpf_write drops it, so content without a
# final newline, or with several, arrives byte for byte. A subshell keeps the umask change to itself, so a
# new file is never readable by others before its chmod.
SHELL_HELPERS: Final = r"""bfb_post_install()
{
	# The installed system needs no copy of this file: it holds the cluster join token.
	rm -f /etc/bf.cfg
}

# dpf_write ROOT PATH MODE override|append: write stdin, minus its final newline, to ROOT/PATH.
dpf_write()
(
	umask 077
	target="$1$2"
	data=""
	IFS= read -r -d '' data || true
	data="${data%$'\n'}"
	mkdir -p "$1${2%/*}/" || exit 1
	if [ "$4" = append ]; then
		printf '%s' "$data" >> "$target" || exit 1
	else
		printf '%s' "$data" > "$target" || exit 1
	fi
	chmod "$3" "$target"
)
"""

MODIFY_OS: Final = """\
bfb_modify_os()
{
	dpf_write_target_os /mnt
}
"""

CLOUD_DATASOURCE: Final = """\
network:
  config: disabled
"""

NETPLAN_EMPTY: Final = ""

NETPLAN_COMM_CH_YAML: Final = """\
network:
  renderer: networkd
  version: 2
  ethernets:
    pf0vf0:
      mtu: {mtu}
  bridges:
    br-comm-ch:
      dhcp4: yes
      mtu: {mtu}
      interfaces:
        - pf0vf0
"""

NETPLAN_OOB_TMFIFO_YAML: Final = """\
network:
  renderer: networkd
  version: 2
  ethernets:
    oob_net0:
      dhcp4: false
    tmfifo_net0:
      addresses:
      - 192.168.100.2/30
      dhcp4: false
"""

BR_NETFILTER: Final = "br_netfilter\n"

SYSCTL_KUBERNETES_CONF: Final = """\
net.ipv4.ip_forward=1
net.bridge.bridge-nf-call-iptables=1
net.bridge.bridge-nf-call-ip6tables=1
"""

# CoreDNS detects a forwarding loop when resolv.conf points at systemd-resolved's stub listener.
RESOLVED_CONF: Final = """\
[Resolve]
DNSStubListener=no
"""

NETWORKMANAGER_CONF: Final = """\
[main]
dns=none
"""

RESOLV_CONF_LINK: Final = """\
rm -f "$1/etc/resolv.conf"
ln -s /run/systemd/resolve/resolv.conf "$1/etc/resolv.conf"
"""

SFS_SCRIPT_TEXT: Final = """\
#!/bin/bash
# Creates the scalable functions service chains use (PF_TOTAL_SF in the flavor's nvconfig), then waits
# for the communication channel bridge to have an address.
set -ex
PF_TOTAL_SF={count}
for i in $(seq 0 $((PF_TOTAL_SF - 1))); do
    /sbin/mlnx-sf --action create --device {device} --sfnum "$i" || true
done
while true; do
    if ip -4 -o addr show dev br-comm-ch 2>/dev/null | grep -q ' inet '; then
        break
    fi
    sleep 1
done
"""

SFS_UNIT_TEXT: Final = f"""\
[Unit]
Description=Create Scalable Functions on the DPU required for DPF
After=network-online.target
Before=kubelet.service
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=/bin/bash {SFS_SCRIPT}

[Install]
WantedBy=multi-user.target
"""

NVCONFIG_SCRIPT_TEXT: Final = """\
#!/bin/bash
# Resets the NIC firmware configuration, then sets the flavor's nvconfig; it takes effect on the next reboot.
set -e
for dev in /dev/mst/*; do
  echo "reset NVConfig on dev ${{dev}} to defaults"
  mlxconfig -d "$dev" -y reset
done
for dev in /dev/mst/*; do
  echo "set NVConfig on dev ${{dev}}"
  mlxconfig -d "$dev" -y set {parameters}
done
echo "Finished setting nvconfig parameters"
"""

OVS_SCRIPT_PREAMBLE: Final = "#!/bin/bash\nset -e\n"

# Registry hosts configuration (containerd's config_path) instead of DPF's sed edits of mirror tables:
# the endpoint lives only in hosts.toml, and the script below only points containerd at that directory.
CONTAINERD_HOSTS_TOML: Final = """\
server = "https://nvcr.io"

[host.{endpoint}]
  capabilities = ["pull", "resolve"]
"""

CONTAINERD_SCRIPT_TEXT: Final = r"""#!/bin/bash
# Points containerd's CRI registry configuration at /etc/containerd/certs.d, where dpf wrote the nvcr.io mirror.
# Usage: config-containerd.sh [CONFIG_FILE]
set -e
CONFIG_FILE=${1:-/etc/containerd/config.toml}
CERTS_DIR=/etc/containerd/certs.d
[ -f "$CONFIG_FILE" ] || exit 1
major=$(containerd --version | awk '{print $3}' | sed 's/^v//' | cut -d. -f1)
if [ "${major:-1}" -ge 2 ] 2>/dev/null; then
    section='[plugins."io.containerd.cri.v1.images".registry]'
else
    section='[plugins."io.containerd.grpc.v1.cri".registry]'
fi
if grep -qF "$section" "$CONFIG_FILE"; then
    # Drop any config_path line of that table, then add ours right below its header.
    awk -v section="$section" -v line="  config_path = \"$CERTS_DIR\"" '
        { t = $0; sub(/^[[:space:]]+/, "", t) }
        t == section { print; print line; inside = 1; next }
        t ~ /^\[/ { inside = 0 }
        inside && t ~ /^config_path[[:space:]]*=/ { next }
        { print }
    ' "$CONFIG_FILE" > "$CONFIG_FILE.dpf"
    mv "$CONFIG_FILE.dpf" "$CONFIG_FILE"
else
    printf '\n%s\n  config_path = "%s"\n' "$section" "$CERTS_DIR" >> "$CONFIG_FILE"
fi
"""

GRUB_DROP_IN_TEXT: Final = "GRUB_CMDLINE_LINUX={cmdline}\n"

KUBELET_DROP_IN_TEXT: Final = """\
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""

REMOVE_KUBELET_BLUEFIELD: Final = f"""\
rm -f "$1{KUBELET_BLUEFIELD_DROP_IN}"
"""

USER_DATA_HEAD: Final = """\
#cloud-config
debug:
  verbose: true
hostname: {hostname}
preserve_hostname: false
users:
  - name: ubuntu
    lock_passwd: false
    groups: adm, audio, cdrom, dialout, dip, floppy, lxd, netdev, plugdev, sudo, video
    sudo: ALL=(ALL) NOPASSWD:ALL
    shell: /bin/bash
"""

USER_DATA_PASSWD: Final = "    passwd: {passwd}\n"

# DPF's default when the flavor sets no ubuntu_PASSWORD: the well-known password, to be changed at first login.
USER_DATA_DEFAULT_PASSWORD: Final = """\
chpasswd:
  list: |
    ubuntu:ubuntu
  expire: true
"""
