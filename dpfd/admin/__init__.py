"""dpfd's admin API: a gRPC server on a local unix socket for root and group ``dpf`` (dpfctl is its client)."""

from dpfd.admin.server import AdminServer, AdminServerError
from dpfd.admin.status import DaemonStatus, GossipStatus, status_from

__all__ = ["AdminServer", "AdminServerError", "DaemonStatus", "GossipStatus", "status_from"]
