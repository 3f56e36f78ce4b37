"""The controller's own gossip member (role "controller"): the same settings, key file and address rules as a
dpfd's `gossip:` section (dpfd.config.GossipSettings, dpfd.gossip_member), given as command-line flags; seeds from the
dpfds' member keys in etcd.

Every replica runs one, so a standby that wins the election already has a warm view; only the leader acts on it
(see reachability.py)."""

from __future__ import annotations

import socket
from importlib import metadata
from pathlib import Path

from pydantic import ValidationError

from dpfd.config import ConfigError, GossipSettings, read_gossip_keys
from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.meta import MemberMeta
from dpfd.gossip_member import start_member as start_gossip_member
from dpfd.store import Store

ROLE = "controller"
PROFILES = GossipConfig.PROFILES
_KEY_FIELD = "field 'gossip.keyFile': "


class GossipSettingsError(ValueError):
    """A gossip flag or the key file is unusable; the message names which and why."""


def gossip_settings(
    key_file: str, *, bind: str, advertise: str | None, profile: str, rejoin_interval: float
) -> GossipSettings:
    """dpfd's gossip settings from the controller's flags (validated as dpfd validates its config)."""
    try:
        return GossipSettings(
            enabled=True,
            key_file=Path(key_file),
            bind=bind,
            advertise=advertise,
            profile=profile,  # checked by the model
            rejoin_interval=rejoin_interval,
        )
    except ValidationError as e:
        first = e.errors()[0]
        flag = "--gossip-" + "-".join(str(part) for part in first["loc"]).replace("_", "-")
        raise GossipSettingsError(f"{flag}: {first['msg']}") from None


def load_keyring(path: Path) -> Keyring:
    """The keys of a dpfd gossip key file (one base64 key per line, the first the primary)."""
    try:
        return Keyring(read_gossip_keys(path))
    except ConfigError as e:
        raise GossipSettingsError(f"--gossip-key-file {str(e).removeprefix(_KEY_FIELD)}") from None


async def start_member(settings: GossipSettings, identity: str, store: Store, etcd_endpoints: list[str]) -> GossipAgent:
    """Start the replica's member, named after its identity (unique among replicas)."""
    assert settings.key_file is not None
    return await start_gossip_member(identity, settings, load_keyring(settings.key_file), store, etcd_endpoints, _meta)


def _meta(started: float, addr: str | None) -> MemberMeta:
    return MemberMeta(
        role=ROLE,
        node=socket.gethostname(),
        version=_version(),
        started=started,
        addresses={"gossip": addr} if addr else {},
    )


def _version() -> str:
    try:
        return metadata.version("dpf")
    except metadata.PackageNotFoundError:
        return "unknown"
