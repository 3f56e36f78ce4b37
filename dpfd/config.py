"""dpfd's configuration: `/etc/dpf/dpfd.yaml` (camelCase keys), overridable by `--config` or `DPFD_CONFIG`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from dpfd.dpu.settings import JoinSettings

DEFAULT_CONFIG_PATH = Path("/etc/dpf/dpfd.yaml")
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
        for ep in v:
            if not ep.startswith(("http://", "https://")):
                raise ValueError(f"endpoint {ep!r} must be a URL like http://HOST:PORT")
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
    join: JoinSettings | None = None  # role dpu: join the DPU cluster with kubeadm (written by bf.cfg)


def config_path(cli_path: str | os.PathLike[str] | None = None) -> Path:
    """Which file to load: `--config` beats `DPFD_CONFIG`, which beats the default."""
    if cli_path is not None:
        return Path(cli_path)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def parse_config(text: str, source: str = "<config>") -> DpfdConfig:
    try:
        data = yaml.safe_load(text)
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
