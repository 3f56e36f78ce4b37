"""The emulated API server's TLS material, kept in a directory as `kubeadm init` keeps /etc/kubernetes/pki.

The CA (ca.crt, ca.key) and the admin token are made once and reused on every start, so kubeconfigs and
kubeadm pins stay valid across restarts; the serving certificate is issued afresh each start for the
addresses the server listens on.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dpfd.host.dms.certs import CertAuthority, make_ca, write_pem

CA_DAYS = 3650  # kubeadm's CA lifetime
SERVER_DAYS = 365  # kubeadm's leaf certificate lifetime
# The names kubeadm puts in the API server's certificate, besides the advertised addresses.
SERVER_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")


@dataclass(frozen=True)
class ServerTls:
    """What a TLS-serving KubeApiServer needs: its CA (for kubeconfigs), serving files, and the admin token."""

    ca_pem: bytes
    cert_path: Path
    key_path: Path
    admin_token: str

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    @property
    def ca_data(self) -> str:
        """The CA as a kubeconfig's certificate-authority-data (base64 of the PEM)."""
        return base64.b64encode(self.ca_pem).decode()


def _load_ca(directory: Path) -> CertAuthority | None:
    cert_file, key_file = directory / "ca.crt", directory / "ca.key"
    if not (cert_file.exists() and key_file.exists()):
        return None
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_file}: not an EC private key")
    return CertAuthority(cert, key)


def _server_cert(ca: CertAuthority, hosts: Iterable[str]) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_DNS_NAMES]
    ips = {"127.0.0.1"}
    for host in hosts:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            if host not in SERVER_DNS_NAMES:
                sans.append(x509.DNSName(host))
            continue
        if not addr.is_unspecified:
            ips.add(str(addr))
    sans.extend(x509.IPAddress(ipaddress.ip_address(ip)) for ip in sorted(ips))
    ca_validity = ca.cert.not_valid_after_utc
    not_before = ca.cert.not_valid_before_utc
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(ca_validity, not_before + dt.timedelta(days=SERVER_DAYS)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ensure_tls(directory: Path, hosts: Iterable[str] = ("127.0.0.1",)) -> ServerTls:
    """Make (or reuse) the CA and admin token in `directory`, and issue a serving certificate for `hosts`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _load_ca(directory)
    if ca is None:
        ca = make_ca("kubernetes", days=CA_DAYS)
        key_pem = ca.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_pem(directory / "ca.key", key_pem, private=True)
        write_pem(directory / "ca.crt", ca.cert_pem, private=False)
    token_file = directory / "admin.token"
    if token_file.exists() and token_file.read_text().strip():
        token = token_file.read_text().strip()
    else:
        token = secrets.token_urlsafe(32)
        write_pem(token_file, token.encode() + b"\n", private=True)
    cert_pem, key_pem = _server_cert(ca, hosts)
    write_pem(directory / "apiserver.crt", cert_pem, private=False)
    write_pem(directory / "apiserver.key", key_pem, private=True)
    return ServerTls(ca.cert_pem, directory / "apiserver.crt", directory / "apiserver.key", token)
