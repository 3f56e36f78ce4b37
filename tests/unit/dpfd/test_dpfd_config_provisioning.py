"""dpfd's `provisioning:` section: defaults for a real host, dpf-sim's settings, and precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpfd.config import ConfigError, parse_config
from dpfd.host.setup import host_reconcilers

BASE = "node: worker-1\netcd: {endpoints: [http://etcd-1:2379]}\nstateDir: /var/lib/dpfd\n"


def test_defaults_suit_a_real_host() -> None:
    c = parse_config(BASE)
    p = c.provisioning
    assert c.bfb_cache_dir() == Path("/var/lib/dpfd/bfb-cache")
    assert c.dpu_etcd_endpoints() == ["http://etcd-1:2379"]
    assert p.dms.targets == {} and p.host_power.emulated is None
    assert p.host_power.cycle_command == ["ipmitool", "chassis", "power", "cycle"]
    assert (p.retry_base, p.retry_cap, p.dpu_reboot_timeout, p.num_vfs, p.mtu) == (5.0, 300.0, 1800.0, 16, 1500)


def test_a_sim_host_section_parses_with_unquoted_pci_addresses() -> None:
    c = parse_config(
        BASE
        + """provisioning:
  bfbCacheDir: /srv/bfb
  dpuEtcdEndpoints: [http://10.0.0.1:2379]
  netns: dpf-host-1
  dms:
    insecure: true
    targets:
      0000-03-00: 127.0.0.1:9339
      0000-04-00: "[::1]:9340"
  hostPower:
    emulated: {stateFile: /tmp/power.json, rebootSeconds: 1.5}
"""
    )
    p = c.provisioning
    assert p.dms.targets == {"0000-03-00": "127.0.0.1:9339", "0000-04-00": "[::1]:9340"}  # not dates
    assert c.bfb_cache_dir() == Path("/srv/bfb") and c.dpu_etcd_endpoints() == ["http://10.0.0.1:2379"]
    assert p.host_power.emulated is not None and p.host_power.emulated.reboot_seconds == 1.5


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ("{dms: {targets: {0000-03-00: 'h:1'}}}", "field 'provisioning.dms': Value error, targets need caFile, "
         "certFile and keyFile (mTLS), or insecure: true"),
        ("{dms: {insecure: true, caFile: /ca.pem}}", "field 'provisioning.dms': Value error, insecure: true and "
         "caFile/certFile/keyFile are exclusive"),
        ("{dms: {insecure: true, targets: {'03:00.0': 'h:1'}}}", "field 'provisioning.dms.targets': Value error, "
         "key '03:00.0' must be a PCI address in DPF's label form, like 0000-03-00"),
        ("{dms: {insecure: true, targets: {0000-03-00: nohost}}}", "field 'provisioning.dms.targets': Value error, "
         "target of 0000-03-00 'nohost' must be HOST:PORT"),
        ("{retryBase: 10, retryCap: 1}", "field 'provisioning': Value error, retryCap (1) must not be below "
         "retryBase (10)"),
        ("{hostPower: {emulated: {rebootSeconds: 1}}}", "field 'provisioning.hostPower.emulated.stateFile': "
         "required field is missing"),
        ("{dpuEtcdEndpoints: []}", "field 'provisioning.dpuEtcdEndpoints': Value error, must list at least one "
         "endpoint, or be left out to use this host's"),
        ("{numVFs: -1}", "field 'provisioning.numVFs': Input should be greater than or equal to 0"),
        ("{dmsTargets: {}}", "field 'provisioning.dmsTargets': unknown field"),
    ],
)  # fmt: skip
def test_errors_name_the_file_the_field_and_the_reason(section: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(BASE + f"provisioning: {section}\n", "/etc/dpf/dpfd.yaml")
    assert str(e.value).startswith(f"/etc/dpf/dpfd.yaml: {error}"), str(e.value)


def test_a_host_without_provisioning_settings_gets_all_three_reconcilers(tmp_path: Path) -> None:
    c = parse_config(BASE.replace("/var/lib/dpfd", str(tmp_path)))
    assert [r.kind for r in host_reconcilers(c)] == ["DPU", "BFB", "Host"]
