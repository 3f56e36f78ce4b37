"""Why did a TLS connection to DMS fail? A one-off handshake with Python's ssl module, run only after a failure.

gRPC reports a server that rejects our client certificate as a bare "Socket closed": with TLS 1.3 the server's
verdict arrives after the client considers the handshake done. Repeating the handshake here and reading the
server's first bytes tells: a healthy gRPC server sends its HTTP/2 SETTINGS at once, a server that refused our
certificate sends a TLS alert (Go's crypto/tls) or just closes the connection (gRPC's own TLS stack). The same
probe tells a TLS-only server apart from a dead one when the client was configured insecure.
"""

from __future__ import annotations

import socket
import ssl

from dpfd.host.dms.tls import TlsFiles

PROBE_TIMEOUT = 2.0


def _split(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def _handshake_and_read(ctx: ssl.SSLContext, host: str, port: int, server_name: str | None) -> bool:
    """Handshake, then read: True if the server hung up without a byte right after the handshake."""
    with (
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name or host) as tls,
    ):
        try:
            return tls.recv(1) == b""
        except TimeoutError:
            return False


def diagnose(target: str, tls: TlsFiles | None, server_name: str | None = None) -> str | None:
    """A sentence naming the TLS problem with `target`, or None if TLS is not the problem (or it cannot tell)."""
    try:
        host, port = _split(target)
    except ValueError:
        return None
    if tls is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        try:
            _handshake_and_read(ctx, host, port, server_name)
        except (OSError, ssl.SSLError):
            return None
        return "the server speaks TLS but this client was configured insecure (give the CA, certificate and key)"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_alpn_protocols(["h2"])
    try:
        ctx.load_verify_locations(cafile=str(tls.ca))
        ctx.load_cert_chain(certfile=str(tls.cert), keyfile=str(tls.key))
    except (OSError, ssl.SSLError) as e:
        return f"cannot load the client TLS files: {e}"
    try:
        hung_up = _handshake_and_read(ctx, host, port, server_name)
    except ssl.SSLCertVerificationError as e:
        return f"the server's certificate is not trusted by CA {tls.ca}: {e.verify_message}"
    except ssl.SSLEOFError:
        hung_up = True
    except ssl.SSLError as e:
        return f"the server refused this client's certificate {tls.cert} (TLS alert: {e.reason or e})"
    except OSError:
        return None
    if hung_up:
        return (
            f"the server closed the connection right after the TLS handshake: it refused this client's "
            f"certificate {tls.cert} (not issued by a CA the server trusts?)"
        )
    return None
