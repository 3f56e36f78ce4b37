"""Asyncio (grpc.aio) client for NVIDIA DMS, doing DPF's flashing sequence step by step.

DPF v24.10 (`dpu/state/installing.go`): gNMI Set `nvidia/mode/config/mode` = string "DPU"; gNOI OS.Install of the
BFB (version = file name); OS.Install of the rendered bf.cfg (version `<dpu>.cfg`, at most 128 KiB); OS.Activate
`<bfb>;<dpu>.cfg` with reboot; then System.RebootStatus (subcomponent CPU) every 3 s until inactive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc

from dpfd.host.dms.chunks import bytes_chunks, file_chunks
from dpfd.host.dms.errors import (
    DmsActivateError,
    DmsError,
    DmsInstallError,
    DmsProtocolError,
    DmsRebootFailed,
    DmsTimeout,
    DmsTlsError,
    DmsUnreachable,
)
from dpfd.host.dms.framing import INSTALL_METHOD, frame_content, serialize_install_request
from dpfd.host.dms.tls import TlsFiles
from dpfd.host.dms.tls_probe import diagnose
from dpfd.proto.gnmi import gnmi_pb2, gnmi_pb2_grpc
from dpfd.proto.gnoi.os import os_pb2, os_pb2_grpc
from dpfd.proto.gnoi.system import system_pb2, system_pb2_grpc
from dpfd.proto.gnoi.types import types_pb2

MODE_PATH = ("nvidia", "mode", "config", "mode")
DEFAULT_CHUNK = 64 * 1024  # what gnoigo (DPF's gNOI library) sends
MAX_CHUNK = 2 << 20  # well under gRPC's default 4 MiB receive limit
MAX_BF_CFG = 128 * 1024  # DMS's bf.cfg limit since DOCA 2.8
CFG_SUFFIX = ".cfg"  # DMS tells a bf.cfg from a BFB by this suffix of the version

# Reconnect quickly once a rebooted DPU listens again (gRPC's default backoff grows to 120 s). DMS is one hop
# away: a connection attempt every half second while it reboots costs nothing, and the flash goes on at most
# half a second after the DPU is back.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 500),
]
# Words gRPC puts in UNAVAILABLE details when the failure is the TLS handshake rather than the network.
_TLS_MARKERS = ("ssl", "tls", "handshake", "certificate", "alert")

ProgressFn = Callable[[int, int], None]
"""on_progress(bytes_received_by_dms, total_bytes)."""


@dataclass(frozen=True)
class InstallResult:
    """What OS.Install ended with."""

    version: str
    transferred: bool  # False when DMS already had this version (Validated without a transfer)
    bytes_sent: int
    description: str


def cpu_path() -> types_pb2.Path:
    """The RebootStatus subcomponent DPF asks about: the DPU's Arm CPU."""
    return types_pb2.Path(elem=[types_pb2.PathElem(name="CPU")])


class DmsClient:
    """One DPU's DMS: mTLS when `tls` is given, else insecure. Use as `async with DmsClient(...) as dms:`."""

    def __init__(
        self,
        target: str,
        tls: TlsFiles | None = None,
        *,
        name: str | None = None,
        rpc_timeout: float = 30.0,
        server_name: str | None = None,
    ) -> None:
        self.target = target
        self.label = f"{name} ({target})" if name else target
        self.rpc_timeout = rpc_timeout
        self._tls = tls
        self._server_name = server_name
        options: list[tuple[str, Any]] = list(_CHANNEL_OPTIONS)
        if tls is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            if server_name:
                options.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.aio.secure_channel(target, tls.client_credentials(), options=options)
        self._os = os_pb2_grpc.OSStub(self._channel)
        # Install gets its own multicallable so content chunks can go out pre-framed (see framing.py).
        self._install_call = self._channel.stream_stream(
            INSTALL_METHOD,
            request_serializer=serialize_install_request,
            response_deserializer=os_pb2.InstallResponse.FromString,
        )
        self._system = system_pb2_grpc.SystemStub(self._channel)
        self._gnmi = gnmi_pb2_grpc.gNMIStub(self._channel)

    async def __aenter__(self) -> DmsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (cancels calls in flight)."""
        await self._channel.close()

    # -- errors ---------------------------------------------------------------------------------------------

    def _translate(self, step: str, e: grpc.aio.AioRpcError) -> DmsError:
        code = e.code()
        details = e.details() or ""
        reason = f"{code.name}: {details}" if details else code.name
        if code == grpc.StatusCode.UNAVAILABLE:
            if any(m in details.lower() for m in _TLS_MARKERS):
                return DmsTlsError(self.label, step, f"TLS handshake failed ({reason})")
            return DmsUnreachable(self.label, step, reason)
        if code == grpc.StatusCode.CANCELLED:
            # Only the server cancels a call that reaches here (ours raise asyncio.CancelledError): it is going down.
            return DmsUnreachable(self.label, step, f"{reason} (the server ended the call; shutting down?)")
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return DmsTlsError(self.label, step, reason)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return DmsTimeout(self.label, step, reason)
        return DmsError(self.label, step, reason)

    async def _fail(self, step: str, e: grpc.aio.AioRpcError) -> DmsError:
        """`_translate`, plus a TLS probe when gRPC only says the connection closed (a refused client cert)."""
        err = self._translate(step, e)
        if isinstance(err, DmsUnreachable) and "refused" not in err.reason.lower():
            why = await asyncio.to_thread(diagnose, self.target, self._tls, self._server_name)
            if why:
                return DmsTlsError(self.label, step, f"{why} ({err.reason})")
        return err

    # -- gNMI -----------------------------------------------------------------------------------------------

    async def set_dpu_mode(self, mode: str = "DPU") -> None:
        """gNMI Set `nvidia/mode/config/mode` to `mode` (a string_val, as DPF sends it)."""
        path = gnmi_pb2.Path(elem=[gnmi_pb2.PathElem(name=n) for n in MODE_PATH])
        req = gnmi_pb2.SetRequest(update=[gnmi_pb2.Update(path=path, val=gnmi_pb2.TypedValue(string_val=mode))])
        step = f"gNMI Set {'/'.join(MODE_PATH)}={mode}"
        try:
            await self._gnmi.Set(req, timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            raise await self._fail(step, e) from None

    # -- OS.Install -----------------------------------------------------------------------------------------

    async def install(
        self,
        version: str,
        source: Path | str,
        chunk_size: int = DEFAULT_CHUNK,
        on_progress: ProgressFn | None = None,
    ) -> InstallResult:
        """OS.Install the file `source` as `version`, streaming it in `chunk_size` pieces (never all in memory).

        No deadline of its own (a BFB takes minutes on a slow link): bound it with `asyncio.timeout` if needed.
        """
        path = Path(source)
        if not 1 <= chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk size {chunk_size} out of range 1..{MAX_CHUNK}")
        try:
            size = path.stat().st_size
        except OSError as e:
            raise ValueError(f"cannot install {path}: {e.strerror or e}") from None
        if not path.is_file():
            raise ValueError(f"cannot install {path}: not a regular file")
        step = f"OS.Install {version!r} ({size} bytes from {path})"
        return await self._install(step, version, file_chunks(path, chunk_size), size, on_progress)

    async def install_bf_cfg(self, version: str, data: bytes, on_progress: ProgressFn | None = None) -> InstallResult:
        """OS.Install a rendered bf.cfg as `version` (which must end in .cfg); refused above 128 KiB."""
        if not version.endswith(CFG_SUFFIX):
            raise ValueError(f"bf.cfg version {version!r} must end with {CFG_SUFFIX!r} (DMS tells bf.cfg files by it)")
        if len(data) > MAX_BF_CFG:
            raise ValueError(f"bf.cfg {version!r} is {len(data)} bytes, over DMS's limit of {MAX_BF_CFG} bytes")
        step = f"OS.Install {version!r} (bf.cfg, {len(data)} bytes)"
        return await self._install(step, version, bytes_chunks(data, DEFAULT_CHUNK), len(data), on_progress)

    async def _install(
        self,
        step: str,
        version: str,
        chunks: AsyncIterator[bytes],
        size: int,
        on_progress: ProgressFn | None,
    ) -> InstallResult:
        call = self._install_call()
        reader: asyncio.Task[os_pb2.Validated] | None = None
        try:
            first_req = os_pb2.TransferRequest(version=version, package_size=size)
            await call.write(os_pb2.InstallRequest(transfer_request=first_req))
            first = await call.read()
            kind = self._response_kind(step, first, "TransferReady")
            if kind == "validated":
                # DMS already has this version: nothing to send (gNOI "Scenario 1").
                await call.done_writing()
                v = first.validated
                return InstallResult(v.version or version, False, 0, v.description)
            if kind == "install_error":
                raise self._install_error(step, first.install_error)
            if kind != "transfer_ready":
                raise DmsProtocolError(self.label, step, f"expected TransferReady, got {kind}")

            reader = asyncio.create_task(self._install_outcome(step, call, size, on_progress))
            sent = await self._send_content(call, chunks, reader)
            if not reader.done():
                with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
                    await call.write(os_pb2.InstallRequest(transfer_end=os_pb2.TransferEnd()))
                    await call.done_writing()
            validated = await reader
            if validated.version != version:
                # gnoigo checks the same: the target must not validate the version, the client must.
                raise DmsProtocolError(
                    self.label, step, f"DMS validated version {validated.version!r}, not the {version!r} sent"
                )
            return InstallResult(version, True, sent, validated.description)
        except grpc.aio.AioRpcError as e:
            raise await self._fail(step, e) from None
        finally:
            if reader is not None:
                if not reader.done():
                    reader.cancel()
                elif not reader.cancelled():
                    reader.exception()  # retrieved here if another error won, so asyncio does not log it
            if not call.done():
                call.cancel()

    async def _send_content(self, call: Any, chunks: AsyncIterator[bytes], reader: asyncio.Task[Any]) -> int:
        """Stream the chunks until done or until DMS has answered (an error ends the transfer early)."""
        sent = 0
        gen = cast(Any, chunks)
        async with contextlib.aclosing(gen):
            async for chunk in gen:
                if reader.done():
                    break
                try:
                    await call.write(frame_content(chunk))
                except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                    break  # the RPC ended; the reader has the reason
                sent += len(chunk)
        return sent

    async def _install_outcome(
        self, step: str, call: Any, size: int, on_progress: ProgressFn | None
    ) -> os_pb2.Validated:
        while True:
            resp = await call.read()
            kind = self._response_kind(step, resp, "Validated")
            if kind == "transfer_progress":
                if on_progress is not None:
                    on_progress(resp.transfer_progress.bytes_received, size)
            elif kind == "validated":
                return cast(os_pb2.Validated, resp.validated)
            elif kind == "install_error":
                raise self._install_error(step, resp.install_error)
            elif kind != "sync_progress":  # dual-supervisor progress: nothing to do on a DPU
                raise DmsProtocolError(self.label, step, f"unexpected {kind} during the transfer")

    def _response_kind(self, step: str, resp: Any, expected: str) -> str:
        if resp is grpc.aio.EOF:
            raise DmsProtocolError(self.label, step, f"DMS closed the stream without {expected} or InstallError")
        kind = resp.WhichOneof("response")
        if kind is None:
            raise DmsProtocolError(self.label, step, "DMS sent an empty InstallResponse")
        return str(kind)

    def _install_error(self, step: str, err: os_pb2.InstallError) -> DmsInstallError:
        return DmsInstallError(self.label, step, os_pb2.InstallError.Type.Name(err.type), err.detail)

    # -- OS.Activate / Verify -------------------------------------------------------------------------------

    async def activate(self, version: str, no_reboot: bool = False) -> None:
        """OS.Activate `version` (DPF: `<bfb>;<dpu>.cfg`); DMS reboots the DPU unless `no_reboot`."""
        step = f"OS.Activate {version!r}" + (" (no reboot)" if no_reboot else "")
        try:
            resp = await self._os.Activate(
                os_pb2.ActivateRequest(version=version, no_reboot=no_reboot), timeout=self.rpc_timeout
            )
        except grpc.aio.AioRpcError as e:
            raise await self._fail(step, e) from None
        kind = resp.WhichOneof("response")
        if kind == "activate_ok":
            return
        if kind == "activate_error":
            err = resp.activate_error
            raise DmsActivateError(self.label, step, os_pb2.ActivateError.Type.Name(err.type), err.detail)
        raise DmsProtocolError(self.label, step, "ActivateResponse carries neither ActivateOK nor ActivateError")

    async def verify(self) -> str:
        """OS.Verify: the running OS version."""
        try:
            resp = await self._os.Verify(os_pb2.VerifyRequest(), timeout=self.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            raise await self._fail("OS.Verify", e) from None
        return str(resp.version)

    # -- System.RebootStatus --------------------------------------------------------------------------------

    async def reboot_status(self, call_timeout: float | None = None) -> system_pb2.RebootStatusResponse:
        """System.RebootStatus for subcomponent CPU (gRPC deadline `call_timeout`, default `rpc_timeout`)."""
        req = system_pb2.RebootStatusRequest(subcomponents=[cpu_path()])
        try:
            resp = await self._system.RebootStatus(req, timeout=call_timeout or self.rpc_timeout)
        except grpc.aio.AioRpcError as e:
            raise self._translate("System.RebootStatus", e) from None
        return cast(system_pb2.RebootStatusResponse, resp)

    async def wait_reboot_done(
        self,
        poll: float = 3.0,
        timeout: float = 1800.0,  # noqa: ASYNC109 (a polling budget that ends in DmsTimeout, not a cancel scope)
        on_poll: Callable[[str], None] | None = None,
    ) -> system_pb2.RebootStatusResponse:
        """Poll RebootStatus until the reboot is no longer active and succeeded.

        UNAVAILABLE (and a poll that times out) means "still rebooting" until `timeout`; a TLS failure, any other
        error, or an inactive reboot with a status other than STATUS_SUCCESS raises.
        """
        step = "wait for reboot (System.RebootStatus CPU)"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = "no answer yet"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DmsTimeout(self.label, step, f"reboot not done after {timeout:g}s (last: {last})")
            try:
                resp = await self.reboot_status(call_timeout=min(self.rpc_timeout, remaining))
            except (DmsUnreachable, DmsTimeout) as e:
                last = f"unreachable: {e.reason}"
            else:
                if not resp.active:
                    status = resp.status.status
                    if status == system_pb2.RebootStatus.STATUS_SUCCESS:
                        return resp
                    name = system_pb2.RebootStatus.Status.Name(status)
                    why = resp.status.message or resp.reason or "no reason given"
                    raise DmsRebootFailed(self.label, step, f"reboot ended with {name}: {why}")
                last = f"reboot active ({resp.reason or 'no reason given'})"
            if on_poll is not None:
                on_poll(last)
            await asyncio.sleep(max(0.0, min(poll, deadline - loop.time())))
