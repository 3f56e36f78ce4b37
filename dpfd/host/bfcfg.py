"""Render a DPU's bf.cfg from its DPUFlavor, the way DPF's `dpu/bfcfg/bf.cfg.template` does, safely.

The BFB installer sources bf.cfg as bash. It holds, in DPF's order: the flavor's bfcfgParameters (installer
settings), then `bfb_modify_os()`, which writes the DPU's files into the freshly installed root file system
(mounted at /mnt) and seeds cloud-init, which on first boot sets the hostname and password and runs the
first-boot commands (mlxconfig, OVS script, update-grub, then dpfd, which joins the DPU cluster with kubeadm).

Unlike DPF's template, files are written at install time by `dpf_write` from quoted heredocs rather than by
cloud-init `write_files` literal blocks, so every byte of user content (quotes, `$(...)`, a missing or extra
final newline, a line equal to a delimiter) arrives verbatim. User text reaches shell only as a heredoc body
or as a `shlex.quote`d word, and reaches YAML only as a JSON-quoted scalar.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from dataclasses import dataclass
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dpfd.api.names import dns1123_subdomain_error
from dpfd.api.provisioning import DPUFlavorSpec
from dpfd.config import GOSSIP_KEY_SIZES, PCI_LABEL_RE, ConfigError, parse_config
from dpfd.dpu.settings import CA_HASH_PATTERN, ENDPOINT_PATTERN, TOKEN_PATTERN
from dpfd.host import bfcfg_template as t

MAX_BF_CFG_SIZE: Final = 128 * 1024  # DMS refuses larger bf.cfg files (DOCA >= 2.8)
DEFAULT_CONTROL_PLANE_MTU: Final = 1500

_PASSWORD_KEY = "ubuntu_PASSWORD"
_PF_TOTAL_SF = re.compile(r"^PF_TOTAL_SF=([0-9]+)")
_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CRYPT_HASH = re.compile(r"^\$[A-Za-z0-9]+\$[A-Za-z0-9./$=,+-]+$")
_CA_HASH = re.compile(CA_HASH_PATTERN)
_REGISTRY_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_VERSION_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+:~-]*$")
_PERMISSIONS = re.compile(r"^0?[0-7]{3}$")
_DELIMITER = "DPF_EOF"


class BfCfgError(ValueError):
    """The flavor or context cannot be rendered into a bf.cfg; the message names the field and why."""


class BfCfgUnsafeContent(BfCfgError):
    """A value cannot be carried through bf.cfg (shell and YAML) without changing its meaning or bytes."""


class BfCfgTooLarge(BfCfgError):
    """The rendered bf.cfg exceeds what DMS accepts."""

    def __init__(self, dpu: str, size: int, limit: int, contributors: list[tuple[str, int]]) -> None:
        self.size = size
        self.limit = limit
        self.contributors = contributors
        parts = ", ".join(f"{label} {n} bytes" for label, n in contributors)
        super().__init__(f"bf.cfg for DPU {dpu} is {size} bytes, over the {limit}-byte limit; largest parts: {parts}")


# ---------------------------------------------------------------- inputs besides the flavor


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubeadmJoin(_Frozen):
    """What `kubeadm join` needs to join the DPU cluster (from `kubeadm token create --print-join-command`).

    The DPU's dpfd does the join: bf.cfg hands these settings to it in dpfd.yaml's `join:`.
    """

    api_server_endpoint: str = Field(pattern=ENDPOINT_PATTERN, description='"host:port" of the API server.')
    token: str = Field(pattern=TOKEN_PATTERN, description="A bootstrap token, [a-z0-9]{6}.[a-z0-9]{16}.")
    ca_cert_hashes: tuple[str, ...] = Field(min_length=1, description='"sha256:<hex>" pins of the cluster CA.')
    node_labels: dict[str, str] = Field(default_factory=dict, description="Labels the DPU's Node registers with.")
    kubeadm: str | None = Field(default=None, description="kubeadm to run on the DPU; None: kubeadm on its PATH.")

    @field_validator("ca_cert_hashes")
    @classmethod
    def _hashes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for h in v:
            if not _CA_HASH.match(h):
                raise ValueError(f"{h!r} is not a CA pin like sha256:<64 hex digits>")
        return v

    @classmethod
    def from_join_command(
        cls, command: str, *, node_labels: dict[str, str] | None = None, kubeadm: str | None = None
    ) -> KubeadmJoin:
        """Parse `kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash sha256:H [...]`."""
        try:
            words = shlex.split(command)
        except ValueError as e:
            raise BfCfgError(f"join command: {e}") from None
        if words[:2] != ["kubeadm", "join"] or len(words) < 3:
            raise BfCfgError(f"join command must start with 'kubeadm join HOST:PORT', got {command[:60]!r}")
        token: str | None = None
        hashes: list[str] = []
        rest = iter(words[3:])
        for word in rest:
            if word in ("--token", "--discovery-token-ca-cert-hash"):
                value = next(rest, None)
                if value is None:
                    raise BfCfgError(f"join command: {word} needs a value")
                if word == "--token":
                    token = value
                else:
                    hashes.append(value)
            else:
                raise BfCfgError(f"join command: unsupported argument {word!r}")
        if token is None or not hashes:
            raise BfCfgError("join command needs --token and --discovery-token-ca-cert-hash")
        try:
            return cls(
                api_server_endpoint=words[2],
                token=token,
                ca_cert_hashes=tuple(hashes),
                node_labels=dict(node_labels or {}),
                kubeadm=kubeadm,
            )
        except ValidationError as e:
            first = e.errors()[0]
            raise BfCfgError(f"join command: {first['loc'][0]}: {first['msg']}") from None


class DpuGossipSettings(_Frozen):
    """Gossip for the DPU's dpfd: the host's keys (so each authenticates the other) and timing profile."""

    keys: tuple[bytes, ...] = Field(min_length=1, description="The host's gossip keys, primary first.")
    profile: Literal["lan", "wan", "local"] = "lan"
    rejoin_interval: float = Field(default=10.0, gt=0)

    @field_validator("keys")
    @classmethod
    def _sizes(cls, v: tuple[bytes, ...]) -> tuple[bytes, ...]:
        for i, key in enumerate(v):
            if len(key) not in GOSSIP_KEY_SIZES:
                raise ValueError(f"key {i} is {len(key)} bytes; keys are 16, 24 or 32 bytes")
        return v


class DpuDaemonSettings(_Frozen):
    """How the DPU's own dpfd reaches etcd, and how it gets installed."""

    etcd_endpoints: tuple[str, ...] = Field(min_length=1)
    ca_pem: str | None = Field(default=None, description="CA bundle that signed the etcd servers' certificates.")
    cert_pem: str | None = Field(default=None, description="The DPU's own client certificate.")
    key_pem: str | None = Field(default=None, description="The DPU's private key; written with mode 0600.")
    install_command: tuple[str, ...] | None = Field(
        default=None,
        description="argv cloud-init runs on first boot to install dpf, e.g. apt-get install -y dpf; "
        "None when the BFB already carries it.",
    )
    gossip: DpuGossipSettings | None = Field(default=None, description="None: the DPU's dpfd runs without gossip.")

    @field_validator("ca_pem", "cert_pem", "key_pem")
    @classmethod
    def _pem(cls, v: str | None) -> str | None:
        if v is not None and not v.lstrip().startswith("-----BEGIN "):
            raise ValueError("must be PEM text starting with '-----BEGIN '")
        return v


class BfCfgContext(_Frozen):
    """Everything about one DPU's bf.cfg that does not come from its DPUFlavor."""

    dpu_name: str = Field(description="The DPU object's name; becomes its hostname and dpfd node name.")
    node_name: str = Field(description="The host Node the DPU sits in.")
    pci_address: str | None = Field(
        default=None, pattern=PCI_LABEL_RE.pattern, description="Where the DPU sits in its host, DPF's label form."
    )
    bfb_name: str | None = None
    bfb_version: str | None = Field(default=None, description="E.g. the BFB file name or DOCA version.")
    join: KubeadmJoin | None = Field(default=None, description="Absent until the DPU cluster exists.")
    dpfd: DpuDaemonSettings
    ubuntu_password: str | None = Field(
        default=None, description="crypt(3) hash for user ubuntu; the flavor's ubuntu_PASSWORD wins."
    )
    sf_count: int | None = Field(default=None, ge=0, description="SFs to create; default PF_TOTAL_SF.")
    control_plane_mtu: int = Field(default=DEFAULT_CONTROL_PLANE_MTU, ge=576, le=9216)

    @field_validator("dpu_name", "node_name", "bfb_name")
    @classmethod
    def _names(cls, v: str | None) -> str | None:
        if v is not None:
            err = dns1123_subdomain_error(v)
            if err is not None:
                raise ValueError(err)
        return v

    @field_validator("bfb_version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not _VERSION_TEXT.match(v):
            raise ValueError("must be letters, digits and . _ + : ~ -")
        return v


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Part:
    """A piece of bf.cfg, labelled so an oversized result can say what made it large."""

    label: str
    text: str


def render_bf_cfg(flavor: DPUFlavorSpec, ctx: BfCfgContext) -> bytes:
    """The bf.cfg for one DPU: same inputs, same bytes. Raises BfCfgError (or a subclass) on bad input."""
    params, flavor_password = _bfcfg_parameters(flavor.bfcfgParameters or [])
    password = flavor_password if flavor_password is not None else ctx.ubuntu_password
    if password is not None:
        _check_password(password, "bfcfgParameters[ubuntu_PASSWORD]" if flavor_password else "ubuntu_password")
    nv_params = _nvconfig_parameters(flavor)
    sf_count = _sf_count(nv_params, ctx.sf_count)

    writes = _Writes()
    _system_files(writes, ctx)
    if sf_count:
        writes.add(t.SFS_SCRIPT, t.SFS_SCRIPT_TEXT.format(count=sf_count, device=t.SF_DEVICE), "0755")
        writes.add(t.SFS_UNIT, t.SFS_UNIT_TEXT, "0644")
    if nv_params:
        words = " ".join(shlex.quote(p) for p in nv_params)
        writes.add(t.NVCONFIG_SCRIPT, t.NVCONFIG_SCRIPT_TEXT.format(parameters=words), "0755")
    sysctl = (flavor.sysctl.parameters if flavor.sysctl else None) or []
    if sysctl:
        _check_lines(sysctl, "sysctl.parameters")
        writes.add(t.SYSCTL_FLAVOR, "".join(p + "\n" for p in sysctl), "0644", label="sysctl.parameters")
    kernel = (flavor.grub.kernelParameters if flavor.grub else None) or []
    if kernel:
        _check_kernel_parameters(kernel)
        cmdline = shlex.quote(" ".join(kernel))
        writes.add(t.GRUB_DROP_IN, t.GRUB_DROP_IN_TEXT.format(cmdline=cmdline), "0644", label="grub.kernelParameters")
    for i, cf in enumerate(flavor.configFiles or []):
        where = f"configFiles[{i}]"
        _check_path(cf.path, f"{where}.path")
        mode = cf.permissions or "0644"
        if not _PERMISSIONS.match(mode):
            raise BfCfgError(f'{where}.permissions: {mode!r} is not an octal mode like "0644"')
        raw = cf.raw or ""
        _check_carriable(raw, f"{where}.raw ({cf.path})")
        writes.add(cf.path, raw, mode, append=cf.operation == "append", label=f"{where} ({cf.path})")
    ovs = flavor.ovs.rawConfigScript if flavor.ovs else None
    if ovs:
        _check_carriable(ovs, "ovs.rawConfigScript")
        writes.add(t.OVS_SCRIPT, t.OVS_SCRIPT_PREAMBLE + ovs, "0755", label="ovs.rawConfigScript")
    registry = flavor.containerdConfig.registryEndpoint if flavor.containerdConfig else None
    if registry:
        if not _REGISTRY_URL.match(registry):
            raise BfCfgUnsafeContent(
                f"containerdConfig.registryEndpoint: {registry!r} must be an http(s) URL of letters, digits "
                "and . _ ~ / - (no quotes, spaces or query)"
            )
        writes.add(t.CONTAINERD_HOSTS, t.CONTAINERD_HOSTS_TOML.format(endpoint=json.dumps(registry)), "0644")
        writes.add(t.CONTAINERD_SCRIPT, t.CONTAINERD_SCRIPT_TEXT, "0755")
    _dpfd_files(writes, ctx)
    if ctx.join is not None:
        _join_files(writes)
    user_data = _user_data(
        ctx,
        password,
        sf_count=sf_count,
        nvconfig=bool(nv_params),
        grub=bool(kernel),
        ovs=bool(ovs),
        registry=bool(registry),
    )
    writes.add(t.USER_DATA, user_data, "0600", label="cloud-init user-data")

    parts = [
        _Part("header", _header(ctx)),
        _Part("bfcfgParameters", "".join(line + "\n" for line in params) + "\n"),
        _Part("helpers", t.SHELL_HELPERS + "\n"),
        *writes.function_parts(),
        _Part("helpers", "\n" + t.MODIFY_OS),
    ]
    data = "".join(p.text for p in parts).encode()
    if len(data) > MAX_BF_CFG_SIZE:
        raise BfCfgTooLarge(ctx.dpu_name, len(data), MAX_BF_CFG_SIZE, _largest(parts))
    return data


class _Writes:
    """The files bfb_modify_os() writes, in order, plus raw shell steps between them."""

    def __init__(self) -> None:
        self._parts: list[_Part] = []

    def add(self, path: str, content: str, mode: str, *, append: bool = False, label: str | None = None) -> None:
        delimiter = _delimiter_for(content)
        op = "append" if append else "override"
        text = f"dpf_write \"$1\" {shlex.quote(path)} {mode} {op} <<'{delimiter}'\n{content}\n{delimiter}\n"
        self._parts.append(_Part(label or path, text))

    def step(self, label: str, shell: str) -> None:
        self._parts.append(_Part(label, shell))

    def function_parts(self) -> list[_Part]:
        head = _Part(
            "helpers", "# Writes the DPU's files under the root file system given as $1.\ndpf_write_target_os()\n{\n"
        )
        return [head, *self._parts, _Part("helpers", "}\n")]


def _delimiter_for(content: str) -> str:
    """A heredoc delimiter no line of the body equals (bash ends a heredoc at the first such line)."""
    lines = set((content + "\n").split("\n"))
    delimiter, n = _DELIMITER, 0
    while delimiter in lines:
        n += 1
        delimiter = f"{_DELIMITER}_{n}"
    return delimiter


def _system_files(writes: _Writes, ctx: BfCfgContext) -> None:
    """What every DPF DPU gets: networking, Kubernetes prerequisites, DNS."""
    writes.add(t.CLOUD_DATASOURCE_CFG, t.CLOUD_DATASOURCE, "0644")
    writes.add(t.NETPLAN_MLNX, t.NETPLAN_EMPTY, "0600")
    writes.add(t.NETPLAN_COMM_CH, t.NETPLAN_COMM_CH_YAML.format(mtu=ctx.control_plane_mtu), "0600")
    writes.add(t.NETPLAN_OOB_TMFIFO, t.NETPLAN_OOB_TMFIFO_YAML, "0600")
    writes.add(t.MODULES_BR_NETFILTER, t.BR_NETFILTER, "0644")
    writes.add(t.SYSCTL_KUBERNETES, t.SYSCTL_KUBERNETES_CONF, "0644")
    writes.add(t.RESOLVED_DROP_IN, t.RESOLVED_CONF, "0644")
    writes.add(t.NETWORKMANAGER_DROP_IN, t.NETWORKMANAGER_CONF, "0644")
    writes.step("helpers", t.RESOLV_CONF_LINK)


def _dpfd_files(writes: _Writes, ctx: BfCfgContext) -> None:
    """dpfd.yaml (role dpu, its host and PCI address, gossip), the DPU's etcd credentials and gossip keys; the config
    is checked by dpfd's own parser."""
    settings = ctx.dpfd
    for i, ep in enumerate(settings.etcd_endpoints):
        _check_line(ep, f"dpfd.etcd_endpoints[{i}]")
    config: dict[str, Any] = {"node": ctx.dpu_name, "role": "dpu", "etcd": {"endpoints": list(settings.etcd_endpoints)}}
    # Who the DPU belongs to: its gossip metadata says so, and the host pairs with it by these.
    config["dpu"] = {"hostNode": ctx.node_name, **({"pciAddress": ctx.pci_address} if ctx.pci_address else {})}
    if ctx.join is not None:
        config["join"] = _join_settings(ctx.join, ctx.dpu_name)
    if settings.gossip is not None:
        config["gossip"] = {"enabled": True, "profile": settings.gossip.profile, "keyFile": t.DPFD_GOSSIP_KEY,
                            "rejoinInterval": settings.gossip.rejoin_interval}  # fmt: skip
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    try:
        parse_config(text, t.DPFD_CONFIG)
    except ConfigError as e:
        raise BfCfgError(f"dpfd settings do not make a valid dpfd config: {e}") from None
    # 0600: with a join it holds the bootstrap token.
    writes.add(t.DPFD_CONFIG, text, "0600", label="dpfd config")
    pki = (
        ("ca.crt", settings.ca_pem, "0644"),
        ("dpfd.crt", settings.cert_pem, "0644"),
        ("dpfd.key", settings.key_pem, "0600"),
    )
    for name, pem, mode in pki:
        if pem is not None:
            _check_carriable(pem, f"dpfd {name}")
            writes.add(f"{t.DPFD_PKI_DIR}/{name}", pem, mode, label=f"dpfd credentials ({name})")
    if settings.gossip is not None:
        keys = "".join(base64.b64encode(key).decode() + "\n" for key in settings.gossip.keys)
        writes.add(t.DPFD_GOSSIP_KEY, keys, "0600", label="dpfd gossip keys")
    provenance = {"bfb": ctx.bfb_name, "bfbVersion": ctx.bfb_version, "dpu": ctx.dpu_name, "node": ctx.node_name}
    writes.add(t.DPFD_PROVENANCE, json.dumps(provenance, sort_keys=True, indent=2) + "\n", "0644")


def _join_settings(join: KubeadmJoin, dpu_name: str) -> dict[str, Any]:
    """dpfd.yaml's `join:` (dpfd.dpu.settings.JoinSettings): the DPU's dpfd runs kubeadm join with these."""
    out: dict[str, Any] = {
        "apiServerEndpoint": join.api_server_endpoint,
        "token": join.token,
        "caCertHashes": list(join.ca_cert_hashes),
        "nodeName": dpu_name,
        "nodeLabels": dict(sorted(join.node_labels.items())),
    }
    if join.kubeadm is not None:
        _check_line(join.kubeadm, "join.kubeadm")
        out["kubeadm"] = join.kubeadm
    return out


def _join_files(writes: _Writes) -> None:
    """DPF's kubelet set-up for kubeadm; the join itself is dpfd's (see _join_settings)."""
    writes.add(t.KUBELET_DROP_IN, t.KUBELET_DROP_IN_TEXT, "0644", label="join")
    writes.step("join", t.REMOVE_KUBELET_BLUEFIELD)


def _user_data(
    ctx: BfCfgContext,
    password: str | None,
    *,
    sf_count: int,
    nvconfig: bool,
    grub: bool,
    ovs: bool,
    registry: bool,
) -> str:
    """cloud-init user-data: hostname, the ubuntu user, and the first-boot commands in DPF's order."""
    text = t.USER_DATA_HEAD.format(hostname=_yaml_str(ctx.dpu_name))
    if password is not None:
        text += t.USER_DATA_PASSWD.format(passwd=_yaml_str(password))
    else:
        text += t.USER_DATA_DEFAULT_PASSWORD
    cmds: list[list[str]] = [
        ["hostnamectl", "set-hostname", ctx.dpu_name],
        ["modprobe", "br_netfilter"],
        ["sysctl", "--system"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "containerd"],
    ]
    if sf_count:
        cmds.append(["systemctl", "enable", "bootstrap-dpf.service"])
    if nvconfig:
        cmds.append([t.NVCONFIG_SCRIPT])
    if ovs:
        cmds.append([t.OVS_SCRIPT])
    if registry:
        cmds += [[t.CONTAINERD_SCRIPT], ["systemctl", "restart", "containerd"]]
    if grub:
        cmds.append(["update-grub"])
    if ctx.dpfd.install_command:
        cmds.append(list(ctx.dpfd.install_command))
    if ctx.join is not None:
        cmds.append(["systemctl", "enable", "kubelet"])  # kubeadm join, run by dpfd, starts it
        # dpfd's unit is ProtectSystem=strict: kubeadm may write only into these, and only if they exist.
        cmds.append(["mkdir", "-p", "/etc/kubernetes", "/var/lib/kubelet"])
    # --no-block: the start waits for dpfd's READY (it needs etcd); first boot must not wait on it.
    cmds.append(["systemctl", "enable", "--now", "--no-block", "dpfd"])
    for i, cmd in enumerate(cmds):
        for word in cmd:
            _check_line(word, f"first-boot command {i}")
    text += "runcmd:\n" + "".join(f"  - [{', '.join(_yaml_str(w) for w in cmd)}]\n" for cmd in cmds)
    return text


def _header(ctx: BfCfgContext) -> str:
    bfb = ""
    if ctx.bfb_name or ctx.bfb_version:
        bfb = ", BFB " + " ".join(x for x in (ctx.bfb_name, ctx.bfb_version) if x)
    return t.HEADER.format(dpu=ctx.dpu_name, node=ctx.node_name, bfb=bfb) + "\n"


# ---------------------------------------------------------------- flavor fields


def _bfcfg_parameters(params: list[str]) -> tuple[list[str], str | None]:
    """Installer assignments as safe shell lines, and ubuntu_PASSWORD lifted out (the last one wins, as in DPF).

    Values are taken literally: `KEY="a b"` becomes `KEY='a b'`, and `$`/backticks are not expanded.
    """
    lines: list[str] = []
    password: str | None = None
    for i, param in enumerate(params):
        where = f"bfcfgParameters[{i}]"
        _check_carriable(param, where)
        key, eq, value = param.partition("=")
        key = key.strip()
        if not eq or not _SHELL_NAME.match(key):
            raise BfCfgError(f"{where}: {param[:60]!r} must be KEY=VALUE with KEY a shell variable name")
        try:
            words = shlex.split(value)
        except ValueError as e:
            raise BfCfgError(f"{where}: cannot parse the value of {key}: {e}") from None
        if len(words) > 1:
            raise BfCfgError(f"{where}: the value of {key} is {len(words)} words; quote it to make one value")
        word = words[0] if words else ""
        if key == _PASSWORD_KEY:
            password = word or None  # DPF: an empty ubuntu_PASSWORD means none
            continue
        lines.append(f"{key}={shlex.quote(word)}" if word else f"{key}=")
    return lines, password


def _nvconfig_parameters(flavor: DPUFlavorSpec) -> list[str]:
    out: list[str] = []
    for i, nv in enumerate(flavor.nvconfig or []):
        for j, p in enumerate(nv.parameters or []):
            _check_line(p, f"nvconfig[{i}].parameters[{j}]")
            out.append(p)
    return out


def _sf_count(nv_params: list[str], requested: int | None) -> int:
    total: int | None = None
    for p in nv_params:
        m = _PF_TOTAL_SF.match(p)
        if m:
            total = int(m.group(1))
            break
    if requested is None:
        return total or 0
    if total is not None and requested > total:
        raise BfCfgError(f"sf_count {requested} exceeds the flavor's PF_TOTAL_SF={total}")
    return requested


# ---------------------------------------------------------------- checks


def _check_carriable(text: str, where: str) -> None:
    """Anything a bash heredoc and a UTF-8 file carry exactly: no NUL, valid Unicode."""
    nul = text.find("\0")
    if nul >= 0:
        raise BfCfgUnsafeContent(
            f"{where}: contains a NUL byte at offset {nul}; bf.cfg is a shell script and cannot carry NUL"
        )
    try:
        text.encode()
    except UnicodeEncodeError as e:
        raise BfCfgUnsafeContent(f"{where}: character {e.start} is not valid Unicode ({e.reason})") from None


def _check_line(text: str, where: str) -> None:
    """A single-line value: carriable and free of control characters."""
    _check_carriable(text, where)
    for i, ch in enumerate(text):
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise BfCfgUnsafeContent(f"{where}: {text[:60]!r} has control character {ch!r} at offset {i}")


def _check_lines(values: list[str], where: str) -> None:
    for i, v in enumerate(values):
        _check_line(v, f"{where}[{i}]")


def _check_kernel_parameters(params: list[str]) -> None:
    for i, p in enumerate(params):
        _check_line(p, f"grub.kernelParameters[{i}]")
        outside_quotes = p.split('"')[::2]
        if not p or p.count('"') % 2 or any(c.isspace() for part in outside_quotes for c in part):
            raise BfCfgError(
                f"grub.kernelParameters[{i}]: {p!r} must be one non-empty word (spaces only inside double quotes)"
            )


def _check_path(path: str, where: str) -> None:
    _check_line(path, where)
    if not path.startswith("/") or path.endswith("/") or ".." in path.split("/"):
        raise BfCfgError(f"{where}: {path!r} must be an absolute file path without '..' segments")


def _check_password(password: str, where: str) -> None:
    if not _CRYPT_HASH.match(password):
        raise BfCfgError(f"{where}: must be a crypt(3) hash like $6$salt$hash (see mkpasswd), not a plain password")


def _yaml_str(value: str) -> str:
    # A JSON string is a YAML double-quoted scalar with the same meaning.
    return json.dumps(value)


def _largest(parts: list[_Part], n: int = 5) -> list[tuple[str, int]]:
    sizes: dict[str, int] = {}
    for p in parts:
        sizes[p.label] = sizes.get(p.label, 0) + len(p.text.encode())
    return sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
