"""`join:` in a DPU dpfd's config: how to join the DPU cluster with kubeadm (written by bf.cfg).

Kept free of dpfd.config imports: dpfd.config imports this model for its `join` field.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from dpfd.api.names import dns1123_subdomain_error, label_value_error, qualified_name_error

TOKEN_PATTERN = r"^[a-z0-9]{6}\.[a-z0-9]{16}$"
CA_HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
ENDPOINT_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"
_CA_HASH = re.compile(CA_HASH_PATTERN)


class JoinSettings(BaseModel):
    """What `kubeadm join` needs, as the DPU's dpfd.yaml carries it (camelCase keys)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    api_server_endpoint: str = Field(pattern=ENDPOINT_PATTERN, description='"host:port" of the API server.')
    token: str = Field(pattern=TOKEN_PATTERN, description="Bootstrap token <id>.<secret>.")
    ca_cert_hashes: list[str] = Field(min_length=1, description='"sha256:<hex>" pins of the cluster CA.')
    node_name: str | None = Field(default=None, description="The Node's name; default: the dpfd node name.")
    node_labels: dict[str, str] = Field(default_factory=dict)
    kubeadm: str = Field(default="kubeadm", min_length=1, description="argv[0] of kubeadm (a PATH lookup if bare).")
    timeout: float = Field(default=300.0, ge=1.0, le=3600.0, description="Seconds one kubeadm join may take.")

    @field_validator("ca_cert_hashes")
    @classmethod
    def _hashes(cls, v: list[str]) -> list[str]:
        for h in v:
            if not _CA_HASH.match(h):
                raise ValueError(f"{h!r} is not a CA pin like sha256:<64 hex digits>")
        return v

    @field_validator("node_name")
    @classmethod
    def _node_name(cls, v: str | None) -> str | None:
        if v is not None:
            err = dns1123_subdomain_error(v)
            if err is not None:
                raise ValueError(f"{v!r}: {err}")
        return v

    @field_validator("node_labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            err = qualified_name_error(key)
            if err is not None:
                raise ValueError(f"label key {key!r}: {err}")
            err = label_value_error(value)
            if err is not None:
                raise ValueError(f"label {key!r} value {value!r}: {err}")
        return v
