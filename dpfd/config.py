"""dpfd's configuration: `/etc/dpf/dpfd.yaml` (camelCase keys), overridable by `--config` or `DPFD_CONFIG`."""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dpfd.dpu.ovs.ports import PortSettings
from dpfd.dpu.settings import JoinSettings

DEFAULT_CONFIG_PATH = Path("/etc/dpf/dpfd.yaml")
GOSSIP_KEY_SIZES = (16, 24, 32)  # AES-style sizes, as memberlist's keyring (dpfd.gossip.keyring.KEY_SIZES)
CONFIG_ENV = "DPFD_CONFIG"

Role = Literal["host", "dpu"]
LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line naming the file, field and reason."""


class _CamelModel(BaseModel):
    # YAML keys are camelCase like the Kubernetes objects dpf mirrors; Python names stay snake_case.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class EtcdConfig(_CamelModel):
    endpoints: list[str] = Field(min_length=1)

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return _check_urls(v)


def _check_urls(urls: list[str]) -> list[str]:
    for ep in urls:
        if not ep.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {ep!r} must be a URL like http://HOST:PORT")
    return urls


PCI_LABEL_RE = re.compile(r"^[0-9a-f]{4}-[0-9a-f]{2}-[0-9a-f]{2}$")
HOST_PORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):[0-9]{1,5}$")


class DmsSettings(_CamelModel):
    """Where each DPU's DMS answers, and how to talk to it (mTLS, or insecure for dpf-sim)."""

    # DPU PCI address in DPF's label form (0000-03-00) -> HOST:PORT of its DMS.
    targets: dict[str, str] = Field(default_factory=dict)
    insecure: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    ready_timeout: float = Field(default=300.0, gt=0)  # DMS Deployment: how long to wait for the port to answer
    reboot_poll: float = Field(default=3.0, gt=0)  # RebootStatus polling, as DPF (3 s)

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: dict[str, str]) -> dict[str, str]:
        for pci, target in v.items():
            if not PCI_LABEL_RE.match(pci):
                raise ValueError(f"key {pci!r} must be a PCI address in DPF's label form, like 0000-03-00")
            if not HOST_PORT_RE.match(target) or not 0 < int(target.rpartition(":")[2]) < 65536:
                raise ValueError(f"target of {pci} {target!r} must be HOST:PORT")
        return v

    @model_validator(mode="after")
    def _tls(self) -> DmsSettings:
        files = (self.ca_file, self.cert_file, self.key_file)
        if self.insecure and any(files):
            raise ValueError("insecure: true and caFile/certFile/keyFile are exclusive")
        if self.targets and not self.insecure and not all(files):
            raise ValueError("targets need caFile, certFile and keyFile (mTLS), or insecure: true")
        return self


class EmulatedPowerSettings(_CamelModel):
    """dpf-sim's host power (dpfd.sim.host_power): the boot time in a small JSON file."""

    state_file: Path
    reboot_seconds: float = Field(default=0.0, ge=0)


class HostPowerSettings(_CamelModel):
    """How the host is rebooted after a flash: ipmitool through the BMC (DPF's way), or emulated."""

    cycle_command: list[str] = Field(default=["ipmitool", "chassis", "power", "cycle"], min_length=1)
    reset_command: list[str] = Field(default=["ipmitool", "chassis", "power", "reset"], min_length=1)
    proc_root: Path = Path("/proc")  # the host's uptime is <procRoot>/uptime
    reboot_timeout: float = Field(default=1800.0, gt=0)  # a requested reboot that has not happened by then fails
    emulated: EmulatedPowerSettings | None = None


class ProvisioningConfig(_CamelModel):
    """The host role's DPU provisioning. Every field has a default that suits a real host."""

    bfb_cache_dir: Path | None = None  # default: <stateDir>/bfb-cache
    bfb_connect_timeout: float = Field(default=30.0, gt=0)
    bfb_idle_timeout: float = Field(default=60.0, gt=0)
    dms: DmsSettings = Field(default_factory=DmsSettings)
    host_power: HostPowerSettings = Field(default_factory=HostPowerSettings)
    retry_base: float = Field(default=5.0, gt=0)  # first retry of a failed phase or download
    retry_cap: float = Field(default=300.0, gt=0)  # the longest wait between retries
    dpu_reboot_timeout: float = Field(default=1800.0, gt=0)  # activation and the DPU's reboot (DPF: 30 min)
    recheck_interval: float = Field(default=10.0, gt=0)  # looking again at things outside dpfd's control
    discovery_interval: float = Field(default=30.0, gt=0)  # re-scan of sysfs for the host's report
    dpu_etcd_endpoints: list[str] | None = None  # what DPUs' dpfds connect to; default: this host's
    num_vfs: int = Field(default=16, alias="numVFs", ge=0, le=1024)  # unless the intent says (flavor NUM_OF_VFS)
    mtu: int = Field(default=1500, ge=576, le=9216)
    bridge: str = Field(default="br-dpu", min_length=1, max_length=15)
    netns: str | None = None  # network namespace of br-dpu and the VF netdevs (dpf-sim); default: dpfd's own
    host_network_timeout: float = Field(default=60.0, gt=0)

    @field_validator("dpu_etcd_endpoints")
    @classmethod
    def _dpu_urls(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise ValueError("must list at least one endpoint, or be left out to use this host's")
        return None if v is None else _check_urls(v)

    @model_validator(mode="after")
    def _retry(self) -> ProvisioningConfig:
        if self.retry_cap < self.retry_base:
            raise ValueError(f"retryCap ({self.retry_cap:g}) must not be below retryBase ({self.retry_base:g})")
        return self


OVS_BRIDGE_RE = r"^[A-Za-z0-9][-A-Za-z0-9_.]{0,14}$"  # an OVS bridge is a netdev too: at most 15 characters


class DataplaneConfig(_CamelModel):
    """The DPU role's data plane (DPF's sfc-controller): Open vSwitch ports and flows. Defaults suit a real DPU."""

    # Off: the dpu role runs without OVS (no ServiceInterface/ServiceChain reconcilers, no CNI socket); their
    # intents are reported KindNotHandled.
    enabled: bool = False
    cni_socket: Path | None = None  # the SFC CNI plugin's socket; default: <runtimeDir>/sfc-cni.sock
    # The network namespace the host ends of pods' veths go to: the one ovs-vswitchd runs in (a name under
    # /var/run/netns or a path); default: dpfd's own.
    cni_netns: str | None = Field(default=None, min_length=1)
    # s between passes releasing addresses whose pod is gone without a DEL (one more runs at start)
    cni_leak_interval: float = Field(default=60.0, gt=0)
    chain_retry: float = Field(default=2.0, gt=0)  # s between tries of a chain whose ports are not there yet
    ovsdb: str = "unix:/var/run/openvswitch/db.sock"  # the Open_vSwitch database (ovsdbapp remote)
    ovsdb_timeout: float = Field(default=10.0, gt=0)  # s, an OVSDB transaction
    apply_timeout: float = Field(default=10.0, gt=0)  # s for ovs-vswitchd to apply a port change before a retry
    bridge: str = Field(default="br-sfc", pattern=OVS_BRIDGE_RE)
    ovn_bridge: str = Field(default="br-ovn", pattern=OVS_BRIDGE_RE)
    # Interface type of physical, pf and vf ports. DPF's is dpdk; a userspace datapath without DPDK (dpf-sim,
    # tests) needs e.g. internal or system.
    port_type: str = Field(default="dpdk", min_length=1, pattern=r"^[a-z][-a-z0-9]*$")
    # How to run ovs-ofctl (OpenFlow 1.4 bundles need -O OpenFlow14), and what it talks to: by default the
    # bridge's name, which ovs-ofctl finds as <OVS_RUNDIR>/<bridge>.mgmt; or a target like unix:/run/x/br-sfc.mgmt.
    ofctl: list[str] = Field(default=["ovs-ofctl", "-O", "OpenFlow14"], min_length=1)
    ofctl_target: str | None = None

    @field_validator("ovsdb")
    @classmethod
    def _remote(cls, v: str) -> str:
        if not v.startswith(("unix:", "tcp:", "ssl:")):
            raise ValueError(
                f"ovsdb {v!r} must be an OVSDB remote like unix:/var/run/openvswitch/db.sock or tcp:HOST:PORT"
            )
        return v

    def port_settings(self) -> PortSettings:
        return PortSettings(bridge=self.bridge, ovn_bridge=self.ovn_bridge, port_type=self.port_type)

    def ofctl_bridge(self) -> str:
        """What ovs-ofctl is pointed at for the bridge."""
        return self.ofctl_target or self.bridge


GossipProfile = Literal["lan", "wan", "local"]
WILDCARD_HOSTS = ("0.0.0.0", "::")


def _gossip_addr(value: str) -> tuple[str, int]:
    """An IP:port gossip address (the transport resolves no names), as (host, port); ValueError saying why not."""
    from dpfd.gossip.transport import parse_addr  # the transport's own parser: what it accepts, we accept

    return parse_addr(value)


class GossipSettings(_CamelModel):
    """Gossip membership (SWIM with Lifeguard): fast liveness and host/DPU pairing. Advisory only: etcd decides who
    owns what. Off by default so existing configs keep working; dpf-sim and the DPUs a host flashes turn it on."""

    enabled: bool = False
    bind: str = "0.0.0.0:7946"  # UDP and TCP, IP:port (no names); port 0: any free port
    # What the others dial. Default: the bound address; when bound to 0.0.0.0 or ::, the address of the interface
    # that routes to the first etcd endpoint. That interface reaches the rest of the fleet (everyone talks to the
    # same etcd), and asking the kernel's routing table needs no extra setting and sends nothing.
    advertise: str | None = None
    profile: GossipProfile = "lan"  # memberlist's timing profiles: lan (data centre), wan, local (loopback, tests)
    # One base64 key (16, 24 or 32 bytes) per line, the first signs and every one verifies (rotation); mode 0600.
    key_file: Path | None = None
    rejoin_interval: float = Field(default=10.0, gt=0)  # s between joins through etcd's seeds and lost members

    @field_validator("bind")
    @classmethod
    def _bind(cls, v: str) -> str:
        _gossip_addr(v)
        return v

    @field_validator("advertise")
    @classmethod
    def _advertise(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host, port = _gossip_addr(v)
        if host in WILDCARD_HOSTS or port == 0:
            raise ValueError(f"{v!r} must be an address others can dial: not {host}, not port 0")
        return v

    @model_validator(mode="after")
    def _usable(self) -> GossipSettings:
        if not self.enabled:
            return self
        if self.key_file is None:
            raise ValueError("keyFile is required when gossip is enabled (every packet is authenticated)")
        host, port = _gossip_addr(self.bind)
        if host in WILDCARD_HOSTS and port == 0 and self.advertise is None:
            raise ValueError(f"bind {self.bind!r} (any address, any port) needs advertise: others could not dial it")
        return self


class DpuIdentity(_CamelModel):
    """Role dpu: where this DPU sits (written by the host through bf.cfg); its gossip metadata pairs it with the host."""

    host_node: str = Field(min_length=1)
    pci_address: str | None = Field(default=None, pattern=PCI_LABEL_RE.pattern)  # DPF's label form, 0000-03-00


class AdminTcpSettings(_CamelModel):
    """The admin API on TCP as well, for remote dpfctl: mutual TLS only (clients present a certificate `ca` signed)."""

    listen: str  # HOST:PORT to bind, e.g. 0.0.0.0:7950 or [::]:7950
    ca: Path
    cert: Path
    key: Path

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        if not HOST_PORT_RE.match(v) or not 0 < int(v.rpartition(":")[2]) < 65536:
            raise ValueError(f"listen {v!r} must be HOST:PORT, like 0.0.0.0:7950")
        return v


class AdminSettings(_CamelModel):
    """dpfd's admin gRPC API (dpfctl): always on `<runtimeDir>/admin.sock`, for root and members of `group`."""

    group: str = Field(default="dpf", min_length=1)  # whose members may use the admin socket besides root
    tcp: AdminTcpSettings | None = None  # off unless set


class MetricsSettings(_CamelModel):
    """Prometheus /metrics over HTTP (docs/metrics.md). Off unless `listen` is set."""

    listen: str = ""  # IP:PORT, e.g. 127.0.0.1:9465 or [::]:9465; empty: no metrics endpoint

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        if v:
            from dpfd.metrics.server import parse_listen  # the server's own parser: what it binds, we accept

            parse_listen(v)
        return v


class DpfdConfig(_CamelModel):
    node: str = Field(min_length=1, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    role: Role = "host"
    etcd: EtcdConfig
    state_dir: Path = Path("/var/lib/dpfd")
    runtime_dir: Path = Path("/run/dpfd")
    session_ttl: float = Field(default=10.0, alias="sessionTTL", ge=2.0, le=3600.0)
    log_level: LogLevel = "info"
    sysfs_root: Path = Path("/sys")
    provisioning: ProvisioningConfig = Field(default_factory=ProvisioningConfig)
    join: JoinSettings | None = None  # role dpu: join the DPU cluster with kubeadm (written by bf.cfg)
    dataplane: DataplaneConfig = Field(default_factory=DataplaneConfig)  # role dpu: ports and flows on OVS
    gossip: GossipSettings = Field(default_factory=GossipSettings)
    dpu: DpuIdentity | None = None  # role dpu: its host and PCI address (written by bf.cfg)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)

    def bfb_cache_dir(self) -> Path:
        return self.provisioning.bfb_cache_dir or self.state_dir / "bfb-cache"

    def dpu_etcd_endpoints(self) -> list[str]:
        return self.provisioning.dpu_etcd_endpoints or list(self.etcd.endpoints)


class _Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: a PCI address key like 0000-03-00 must stay a string, not a date."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def config_path(cli_path: str | os.PathLike[str] | None = None) -> Path:
    """Which file to load: `--config` beats `DPFD_CONFIG`, which beats the default."""
    if cli_path is not None:
        return Path(cli_path)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def parse_config(text: str, source: str = "<config>") -> DpfdConfig:
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return DpfdConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_first_error(e)}") from None


def load_config(cli_path: str | os.PathLike[str] | None = None) -> DpfdConfig:
    path = config_path(cli_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (set --config or {CONFIG_ENV})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    return parse_config(text, str(path))


def read_gossip_keys(path: Path) -> list[bytes]:
    """The keys in gossip.keyFile, primary first; ConfigError naming the field and why when they cannot be used."""
    where = f"field 'gossip.keyFile': {path}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{where}: key file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read key file: {getattr(e, 'strerror', None) or e}") from None
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: line {number} is not base64") from None
        if len(key) not in GOSSIP_KEY_SIZES:
            raise ConfigError(f"{where}: line {number} is a {len(key)}-byte key; keys are 16, 24 or 32 bytes")
        keys.append(key)
    if not keys:
        raise ConfigError(f"{where}: no key in the file (one base64 key per line, the first is the primary)")
    return keys


def _first_error(e: ValidationError) -> str:
    errs = e.errors()
    first = errs[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "missing":
        msg = "required field is missing"
    elif first["type"] == "extra_forbidden":
        msg = "unknown field"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"field {field!r}: {msg}{more}"
