#!/bin/bash
# Install the Debian packages dpf's tests and simulator use, if they are missing. Idempotent; needs root.
set -euo pipefail
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v ovs-vswitchd >/dev/null || need+=(openvswitch-switch)
command -v ip >/dev/null || need+=(iproute2)
command -v ethtool >/dev/null || need+=(ethtool)
command -v kubectl >/dev/null || need+=(kubernetes-client)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v rpm >/dev/null || need+=(rpm)                          # the .rpm package's tests (rpm --root)
command -v systemd-nspawn >/dev/null || need+=(systemd-container) # a real systemd for the unit tests
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's policy-rc.d refuses to start services here; dpf starts etcd and OVS itself.
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
etcd --version | sed -n 1p  # sed reads to the end: head would SIGPIPE the writer, failing under pipefail
ovs-vswitchd --version | sed -n 1p
kubectl version --client 2>/dev/null | sed -n 1p
