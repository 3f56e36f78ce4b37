"""Small parts of the DMS client and emulator: certificates, chunked reads, fault flags, the stream verifier, hand framing."""

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
from dpfd.host.dms.framing import frame_content, parse_install_request, serialize_install_request
from dpfd.host.dms.tls import TlsFiles
from dpfd.proto.gnoi.os import os_pb2
from dpfd.sim.bfb_image import TRAILER_PREFIX, ImageVerifier, make_image, trailer
from dpfd.sim.bluefield.dms_server import DmsFaults, _image_problem, parse_fault


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


@pytest.mark.parametrize("chunk", [1, 7, 80, 81, 82, 4096, 65536])
def test_stream_verifier_accepts_an_intact_image_in_any_chunking(chunk: int) -> None:
    image = make_image("v", 100_000)
    v = ImageVerifier()
    view = memoryview(image)
    for i in range(0, len(image), chunk):
        v.feed(view[i : i + chunk])
    assert _image_problem(v) is None
    assert v.claimed_sha256 == trailer("v", 100_000)[len(TRAILER_PREFIX) : -1].decode()


def test_stream_verifier_names_what_is_wrong() -> None:
    image = bytearray(make_image("v", 10_000))
    image[5000] ^= 0x40
    v = ImageVerifier()
    v.feed(bytes(image))
    problem = _image_problem(v)
    assert problem is not None and problem[0] == "INTEGRITY_FAIL" and "10000 body bytes" in problem[1]
    foreign = ImageVerifier()
    foreign.feed(b"\x00" * 500)
    assert _image_problem(foreign) == (
        "PARSE_FAIL",
        "no DPFSIM-SHA256 trailer at the end of the 500 bytes received: not a dpf-sim BFB",
    )
    short = ImageVerifier()
    short.feed(b"abc")
    assert _image_problem(short) is not None and _image_problem(short)[0] == "PARSE_FAIL"  # type: ignore[index]


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 65536, 2 << 20])
def test_hand_framed_content_is_protobufs_encoding_and_parses_back_without_copy(size: int) -> None:
    chunk = bytes(i % 256 for i in range(size))
    framed = frame_content(chunk)
    assert framed == os_pb2.InstallRequest(transfer_content=chunk).SerializeToString()
    parsed = parse_install_request(framed)
    assert isinstance(parsed, memoryview) and parsed.obj is framed and bytes(parsed) == chunk
    assert serialize_install_request(framed) is framed


def test_other_install_requests_parse_as_messages() -> None:
    first = os_pb2.InstallRequest(transfer_request=os_pb2.TransferRequest(version="v", package_size=9))
    end = os_pb2.InstallRequest(transfer_end=os_pb2.TransferEnd())
    for msg in (first, end):
        parsed = parse_install_request(serialize_install_request(msg))
        assert isinstance(parsed, os_pb2.InstallRequest) and parsed == msg
    # content followed by another field is not exactly one field: parsed the slow, general way
    mixed = frame_content(b"abc") + os_pb2.InstallRequest(transfer_end=os_pb2.TransferEnd()).SerializeToString()
    assert isinstance(parse_install_request(mixed), os_pb2.InstallRequest)
