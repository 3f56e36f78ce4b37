"""Small parts of the DMS client and emulator: certificates, chunked reads, fault flags, the stream tail."""

from __future__ import annotations

import ipaddress
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from dpfd.host.dms.certs import make_ca, write_cert_set
from dpfd.host.dms.chunks import BATCH_BYTES, bytes_chunks, file_chunks
from dpfd.host.dms.tls import TlsFiles
from dpfd.sim.bluefield.dms_server import DmsFaults, _Tail, parse_fault


def test_cert_set_chains_to_its_ca_with_the_right_names_and_usages(tmp_path: Path) -> None:
    paths = write_cert_set(tmp_path, "dpu-3", "203.0.113.7")
    ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    client = x509.load_pem_x509_certificate(paths.client_cert.read_bytes())
    for cert in (server, client):
        cert.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("203.0.113.7") in sans.get_values_for_type(x509.IPAddress)
    assert server.subject.rfc4514_string() == "CN=dpu-3-dms"
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert stat.S_IMODE(paths.server_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.client_key.stat().st_mode) == 0o600


def test_a_cert_from_another_ca_does_not_verify(tmp_path: Path) -> None:
    paths = write_cert_set(tmp_path, "dpu-3", "127.0.0.1")
    other = make_ca("other")
    client = x509.load_pem_x509_certificate(paths.client_cert.read_bytes())
    with pytest.raises((ValueError, InvalidSignature)):
        client.verify_directly_issued_by(other.cert)


def test_tls_files_name_the_bad_file(tmp_path: Path) -> None:
    paths = write_cert_set(tmp_path, "dpu-3", "127.0.0.1")
    with pytest.raises(ValueError, match=re.escape(f"cannot read TLS key file {tmp_path}/missing.key")):
        TlsFiles(paths.ca, paths.client_cert, tmp_path / "missing.key").read()
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match=r"TLS certificate file .*junk\.crt is not PEM"):
        TlsFiles(paths.ca, tmp_path / "junk.crt", paths.client_key).read()


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, BATCH_BYTES, BATCH_BYTES + 3, 3 * BATCH_BYTES - 1])
async def test_file_chunks_reassemble_the_file(tmp_path: Path, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    path = tmp_path / "f"
    path.write_bytes(data)
    chunks = [c async for c in file_chunks(path, 65536)]
    assert b"".join(chunks) == data
    assert all(len(c) == 65536 for c in chunks[:-1]) and all(chunks)


async def test_file_chunks_closed_early_does_not_leak(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * (2 * BATCH_BYTES))
    gen = file_chunks(path, 4096)
    assert len(await anext(gen)) == 4096
    await gen.aclose()  # must wait for the prefetch and close the file without error


async def test_bytes_chunks() -> None:
    assert [c async for c in bytes_chunks(b"abcdefg", 3)] == [b"abc", b"def", b"g"]


def test_fault_flags() -> None:
    f = DmsFaults()
    f = parse_fault("corrupt", f)
    f = parse_fault("install-error=TOO_LARGE", f)
    f = parse_fault("reboot-hang", f)
    f = parse_fault("slow-link=1000", f)
    assert f == DmsFaults(True, "TOO_LARGE", True, 1000.0)
    assert parse_fault("install-error", DmsFaults()).install_error == "UNSPECIFIED"
    for bad in ("explode", "slow-link=fast", "corrupt=1"):
        with pytest.raises(ValueError, match=f"bad --fault '{bad}'"):
            parse_fault(bad, DmsFaults())
    with pytest.raises(ValueError, match="unknown InstallError type 'NOPE'"):
        parse_fault("install-error=NOPE", DmsFaults())


def test_tail_keeps_the_last_bytes_in_any_chunking() -> None:
    data = bytes(range(256)) * 40
    for size in (1, 7, 81, 100, 4096):
        tail = _Tail(81)
        for i in range(0, len(data), size):
            tail.feed(data[i : i + size])
        assert tail.value() == data[-81:]
    short = _Tail(81)
    short.feed(b"abc")
    assert short.value() == b"abc"
