"""The admin API of one dpfd, from its configuration and what the daemon has started (NodeServices)."""

from __future__ import annotations

import logging

from dpfd.admin.server import AdminServer, AdminServerError
from dpfd.admin.status import status_from
from dpfd.config import DpfdConfig
from dpfd.services import NodeServices

log = logging.getLogger(__name__)


async def start_admin(config: DpfdConfig, services: NodeServices) -> AdminServer | None:
    """The admin API on `<runtimeDir>/admin.sock` (dpfctl). Like gossip it is not needed for the node's work: when its
    socket cannot be served, dpfd says why and goes on."""
    gossip = services.gossip
    path = config.runtime_dir / "admin.sock"
    try:
        admin = AdminServer(
            path,
            members=gossip.members if gossip is not None else None,
            status=status_from(config.node, config.role, services.version, services.started, gossip),
        )
        await admin.start()
    except (AdminServerError, OSError) as e:
        log.error("admin API not started", extra={"socket": str(path), "error": f"{type(e).__name__}: {e}"})
        return None
    return admin
