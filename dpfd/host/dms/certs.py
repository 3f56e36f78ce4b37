"""Per-DPU DMS certificates (CA, server, client) minted with `cryptography`, for dpf-sim and tests.

DPF has cert-manager issue `<dpu>-dms-server-cert` (IP SAN = the host address) and a provisioning client
certificate from one issuer; this mints the same shape locally. Keys are ECDSA P-256: quick to generate and
accepted by gRPC's TLS stack.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DAYS = 1


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class CertAuthority:
    """A CA able to issue server and client certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CertPaths:
    """Where `write_cert_set` put the PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _validity(days: float) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    # Backdated a little so a peer with a slightly slow clock accepts it.
    return now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)


def make_ca(common_name: str = "dpf-provisioning-issuer", days: float = 365) -> CertAuthority:
    """A self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertAuthority(cert, key)


def _issue(
    ca: CertAuthority, common_name: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName], days: float
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_server_cert(ca: CertAuthority, dpu_name: str, ip: str, days: float = DEFAULT_DAYS) -> Issued:
    """The DMS server certificate of one DPU: CN `<dpu>-dms`, IP SAN `ip` (plus DNS SAN localhost for loopback)."""
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName("localhost")]
    return _issue(ca, f"{dpu_name}-dms", ExtendedKeyUsageOID.SERVER_AUTH, sans, days)


def issue_client_cert(ca: CertAuthority, name: str = "dpf-provisioning-client", days: float = DEFAULT_DAYS) -> Issued:
    """A client certificate the DMS server accepts when it trusts `ca`."""
    return _issue(ca, name, ExtendedKeyUsageOID.CLIENT_AUTH, [], days)


def write_pem(path: Path, data: bytes, private: bool) -> None:
    """Write a PEM file atomically; a private one (a key, a token) is created mode 0600, never readable by others."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_cert_set(directory: Path, dpu_name: str, ip: str, ca: CertAuthority | None = None) -> CertPaths:
    """Mint (or reuse `ca` for) a DPU's CA, server and client certificates and write them as PEM files.

    Files: ca.crt, server.crt, server.key, client.crt, client.key (keys mode 0600).
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = ca or make_ca()
    server = issue_server_cert(ca, dpu_name, ip)
    client = issue_client_cert(ca)
    paths = CertPaths(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )
    write_pem(paths.ca, ca.cert_pem, private=False)
    write_pem(paths.server_cert, server.cert_pem, private=False)
    write_pem(paths.server_key, server.key_pem, private=True)
    write_pem(paths.client_cert, client.cert_pem, private=False)
    write_pem(paths.client_key, client.key_pem, private=True)
    return paths
