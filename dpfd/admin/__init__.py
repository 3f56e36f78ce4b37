"""dpfd's admin API: a gRPC server on a local unix socket for root and group ``dpf`` (and on TCP with mTLS when
configured); dpfctl is its client. `wiring.start_admin` puts it together for a running dpfd."""

from dpfd.admin.server import AdminServer, AdminServerError, TcpListener
from dpfd.admin.service import AdminService
from dpfd.admin.status import DaemonStatus, GossipStatus, status_from

__all__ = [
    "AdminServer",
    "AdminServerError",
    "AdminService",
    "DaemonStatus",
    "GossipStatus",
    "TcpListener",
    "status_from",
]
