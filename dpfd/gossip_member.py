"""This dpfd's gossip member, built from its configuration: the keys, the address others dial, what it tells about
itself (role, node, version, start time, and for a DPU its host and PCI address), seeds from etcd, key reload."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from dpfd.config import WILDCARD_HOSTS, DpfdConfig, GossipSettings, read_gossip_keys
from dpfd.gossip.agent import GossipAgent, etcd_seeds
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.meta import MemberMeta
from dpfd.gossip.transport import format_addr, parse_addr
from dpfd.store import Store

DEFAULT_ETCD_PORT = 2379


def member_meta(config: DpfdConfig, version: str, started: float, addr: str | None) -> MemberMeta:
    dpu = config.dpu if config.role == "dpu" else None
    return MemberMeta(
        role=config.role,
        node=config.node,
        version=version,
        started=started,
        addresses={"gossip": addr} if addr else {},
        host=dpu.host_node if dpu is not None else "",
        pci=(dpu.pci_address or "") if dpu is not None else "",
    )


def advertise_address(settings: GossipSettings, etcd_endpoints: list[str]) -> str | None:
    """The address others dial: `advertise`, else the bound one, else (bound to any address) the local address the
    kernel would send from towards the first etcd endpoint. None when it is known only once bound (port 0)."""
    if settings.advertise is not None:
        return settings.advertise
    host, port = parse_addr(settings.bind)
    if host not in WILDCARD_HOSTS:
        return format_addr(host, port) if port else None
    return format_addr(source_address_towards(etcd_endpoints[0]), port)


def source_address_towards(url: str) -> str:
    """The local IP the routing table picks to reach `url`'s host (a connected UDP socket: nothing is sent)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    infos = socket.getaddrinfo(host, parts.port or DEFAULT_ETCD_PORT, type=socket.SOCK_DGRAM)
    if not infos:
        raise OSError(f"{host!r} has no address")
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect(sockaddr)
        local = str(s.getsockname()[0])
    return str(ipaddress.ip_address(local.split("%")[0]))


async def start_gossip(config: DpfdConfig, store: Store, version: str, keys: list[bytes]) -> GossipAgent:
    """Bind, start probing and keep joining through the gossip addresses registered in etcd."""

    def meta(started: float, addr: str | None) -> MemberMeta:
        return member_meta(config, version, started, addr)

    return await start_member(config.node, config.gossip, Keyring(keys), store, list(config.etcd.endpoints), meta)


async def start_member(
    name: str,
    settings: GossipSettings,
    keyring: Keyring,
    store: Store,
    etcd_endpoints: list[str],
    meta: Callable[[float, str | None], MemberMeta],
) -> GossipAgent:
    """A started member with these settings (a dpfd's or a controller replica's), seeded from etcd. ``meta`` says
    what it tells the others, given its start time and the address they dial."""
    # getaddrinfo may block (a name in the etcd URL): off the loop.
    advertise = await asyncio.to_thread(advertise_address, settings, etcd_endpoints)
    started = time.time()  # wall clock, as a host compares it with when it activated a flash
    agent = GossipAgent(
        name,
        meta(started, advertise),
        keyring,
        config=GossipConfig.profile(settings.profile),
        bind=settings.bind,
        advertise=advertise,
        seeds=etcd_seeds(store),
        rejoin_interval=settings.rejoin_interval,
    )
    await agent.start()
    if advertise is None:  # bound to port 0: now the address is known
        agent.update_meta(meta(started, agent.addr))
    return agent


def reload_keys(keyring: Keyring, keys: list[bytes]) -> None:
    """Make the keyring hold exactly `keys`, the first as primary: add new ones, switch, then drop the rest (the
    order memberlist's rotation needs, so nothing in flight fails to verify mid-way)."""
    for key in keys:
        keyring.add(key)
    keyring.use(keys[0])
    for key in keyring.keys:
        if key not in keys:
            keyring.remove(key)


def reload_key_file(agent: GossipAgent, settings: GossipSettings) -> int:
    """Re-read gossip.keyFile into the running member's keyring (SIGHUP); how many keys it holds now."""
    assert settings.key_file is not None
    keys = read_gossip_keys(settings.key_file)
    reload_keys(agent.keyring, keys)
    return len(keys)
