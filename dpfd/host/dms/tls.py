"""TLS material for DMS (mTLS both ways): PEM files read once, turned into gRPC credentials."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class TlsFiles:
    """PEM paths: the CA that signed the peer's certificate, and our own certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(ca, cert, key) bytes; a missing or non-PEM file raises ValueError naming it."""
        out = []
        for what, path in (("CA", self.ca), ("certificate", self.cert), ("key", self.key)):
            try:
                data = Path(path).read_bytes()
            except OSError as e:
                raise ValueError(f"cannot read TLS {what} file {path}: {e.strerror or e}") from None
            if b"-----BEGIN " not in data:
                raise ValueError(f"TLS {what} file {path} is not PEM (no -----BEGIN line)")
            out.append(data)
        return out[0], out[1], out[2]

    def client_credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials: trust `ca` for the server, present `cert`/`key` as the client."""
        ca, cert, key = self.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Server credentials that require a client certificate signed by `ca`."""
        ca, cert, key = self.read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
