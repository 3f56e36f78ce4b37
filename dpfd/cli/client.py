"""dpfctl's connection to one dpfd's admin API: its unix socket (--socket, $DPF_ADMIN_SOCKET, /run/dpfd/admin.sock),
or TCP with mutual TLS (--address with --tls-ca/--tls-cert/--tls-key, or $DPF_ADMIN_ADDRESS and $DPF_ADMIN_CA,
$DPF_ADMIN_CERT, $DPF_ADMIN_KEY). Every gRPC failure becomes one line and an exit code (CliError)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message  # type: ignore[import-untyped]

from dpfd.admin.server import DEFAULT_SOCKET
from dpfd.admin.sockpath import SocketPath
from dpfd.cli.errors import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, CliError
from dpfd.host.dms.tls import TlsFiles
from dpfd.proto.dpf.admin.v1 import admin_pb2_grpc

SOCKET_ENV = "DPF_ADMIN_SOCKET"
ADDRESS_ENV = "DPF_ADMIN_ADDRESS"
TLS_ENV = {"ca": "DPF_ADMIN_CA", "cert": "DPF_ADMIN_CERT", "key": "DPF_ADMIN_KEY"}
TIMEOUT = 5.0


def socket_path(arg: str | None) -> str:
    return arg or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


@dataclass(frozen=True)
class Target:
    """Where the daemon is: a unix socket, or a TCP address with the TLS files to prove who we are."""

    socket: str = DEFAULT_SOCKET
    address: str | None = None
    tls: TlsFiles | None = None

    @property
    def where(self) -> str:
        return self.address or self.socket

    @classmethod
    def from_args(cls, socket_arg: str | None = None, address: str | None = None, ca: str | None = None,
                  cert: str | None = None, key: str | None = None) -> Target:  # fmt: skip
        address = address or os.environ.get(ADDRESS_ENV)
        if not address:
            return cls(socket=socket_path(socket_arg))
        files = {"ca": ca, "cert": cert, "key": key}
        files = {k: v or os.environ.get(TLS_ENV[k]) for k, v in files.items()}
        missing = [f"--tls-{k}" for k, v in files.items() if not v]
        if missing:
            raise CliError(f"--address {address} needs {', '.join(missing)} (the admin API on TCP is mutual TLS only)",
                           EXIT_USAGE)  # fmt: skip
        return cls(address=address, tls=TlsFiles(Path(str(files["ca"])), Path(str(files["cert"])),
                                                 Path(str(files["key"]))))  # fmt: skip


class AdminClient:
    """A channel to the daemon for the duration of a ``with`` block."""

    def __init__(self, target: Target, timeout: float = TIMEOUT) -> None:
        self.target = target
        self.timeout = timeout
        self._path: SocketPath | None = None
        self._channel: grpc.Channel | None = None
        self.stub: Any = None

    def __enter__(self) -> AdminClient:
        if self.target.address is not None:
            assert self.target.tls is not None
            try:
                credentials = self.target.tls.client_credentials()
            except ValueError as e:
                raise CliError(str(e), EXIT_USAGE) from None
            self._channel = grpc.secure_channel(self.target.address, credentials)
        else:
            try:
                self._path = SocketPath(self.target.socket)
            except FileNotFoundError:
                raise CliError(_no_socket(self.target.socket)) from None
            except (OSError, ValueError) as e:
                raise CliError(f"cannot use {self.target.socket}: {e}") from None
            self._channel = grpc.insecure_channel(f"unix:{self._path.name}")
        self.stub = admin_pb2_grpc.AdminStub(self._channel)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._path is not None:
            self._path.close()

    def call(self, method: str, request: Message) -> Any:
        """A unary call; its failure as a CliError."""
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise self.error(e, method) from None

    def stream(self, method: str, request: Message) -> Iterator[Any]:
        """A server stream (no deadline: it runs until the caller stops reading); its failure as a CliError."""
        try:
            yield from getattr(self.stub, method)(request)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            raise self.error(e, method) from None

    def error(self, e: grpc.RpcError, method: str) -> CliError:
        code, details = e.code(), e.details() or ""
        where = self.target.where
        if code == grpc.StatusCode.NOT_FOUND:
            return CliError(details, EXIT_NOT_FOUND)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return CliError(details, EXIT_USAGE)
        if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION):
            return CliError(details)  # the daemon says it in full
        if code == grpc.StatusCode.UNAVAILABLE:
            why = _why_unreachable(self._path.name, self.target.socket) if self._path is not None else None
            return CliError(why or f"cannot reach dpfd at {where}: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return CliError(f"dpfd at {where} did not answer within {self.timeout:g}s")
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return CliError(f"dpfd at {where} does not know {method}: it is older than this dpfctl")
        return CliError(f"dpfd at {where} answered {code.name}: {details}", EXIT_FAILED)


def _no_socket(path: str) -> str:
    return f"no dpfd admin socket at {path} (is dpfd running? --socket or ${SOCKET_ENV} name another)"


def _why_unreachable(name: str, path: str) -> str | None:
    """gRPC's UNAVAILABLE says little; a plain connect tells a missing socket from a refused or forbidden one."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(name)
        except FileNotFoundError:
            return _no_socket(path)
        except PermissionError:
            return f"permission denied on {path}: run as root or as a member of group dpf"
        except ConnectionRefusedError:
            return f"nothing listens on {path} (dpfd is not running, or stopped uncleanly)"
        except OSError as e:
            return f"cannot connect to {path}: {errno.errorcode.get(e.errno or 0, '')} {e.strerror}".strip()
    return None
