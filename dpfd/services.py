"""What one dpfd process runs besides its reconcilers, in one object for the parts that need it (the host's
provisioning, the admin server): the daemon fills it in as each thing starts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dpfd.agent import NodeAgent
    from dpfd.config import DpfdConfig
    from dpfd.gossip.agent import GossipAgent
    from dpfd.store import Store


@dataclass
class NodeServices:
    config: DpfdConfig
    version: str
    started: float = field(default_factory=time.time)  # wall clock: when this dpfd process started
    store: Store | None = None  # once connected to etcd
    gossip: GossipAgent | None = None  # None when gossip is off, or did not start (see the log)
    agent: NodeAgent | None = None  # the node agent: registration, intents, reports
