"""Emulated DMS: the gNOI OS/System and gNMI subset NVIDIA's DMS serves on each DPU, over gRPC (mTLS or insecure).

Behaviour follows the gNOI specification and what DPF relies on:
- OS.Install: TransferRequest -> Validated (version already installed) or TransferReady; content chunks with a
  TransferProgress every `progress_every` bytes; TransferEnd -> integrity check -> Validated, or InstallError.
  A BFB (any version not ending in .cfg) must end with the dpf-sim trailer `DPFSIM-SHA256:<hex>` of the bytes
  before it (see dpfd.sim.bfb_image): no trailer -> PARSE_FAIL, mismatch -> INTEGRITY_FAIL. A package_size that
  disagrees with the bytes received -> INTEGRITY_FAIL. A bf.cfg is limited to 128 KiB and always re-transferred.
  Receiving is paced to `install_bytes_per_s` (0 = unthrottled): install time is proportional to size.
- OS.Activate `<bfb>;<dpu>.cfg`: every part must be installed (else NON_EXISTENT_VERSION); then, unless
  no_reboot, the DPU reboots: the gRPC port really closes (clients get UNAVAILABLE) for `reboot_seconds`, then
  the server listens again on the same port running the activated version, and RebootStatus reports inactive.
- System.RebootStatus (subcomponent CPU), System.Reboot (COLD), System.Time, OS.Verify.
- gNMI Set of nvidia/mode/config/mode ("DPU" or "NIC"), gNMI Capabilities.

Fault knobs (`DmsFaults`): corrupt transfer, install error, reboot that never completes, late RebootStatus, slow link.
Counts of installs, activations and reboots are kept in `stats()` and in the state dir (see dms_state).

With `dpu_os` options (and a state dir) the DPU also boots its OS after a reboot, and at start when it has
one installed: a real dpfd in role dpu configured by the activated bf.cfg (see dpu_os). The OS shuts down
when the DPU reboots and when the server stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from dpfd.host.dms.framing import parse_install_request
from dpfd.host.dms.tls import TlsFiles
from dpfd.proto.gnmi import gnmi_pb2, gnmi_pb2_grpc
from dpfd.proto.gnoi.os import os_pb2, os_pb2_grpc
from dpfd.proto.gnoi.system import system_pb2, system_pb2_grpc
from dpfd.sim.bfb_image import TRAILER_LEN, ImageVerifier
from dpfd.sim.bluefield.dms_state import DmsState, InstalledImage, StateStore
from dpfd.sim.bluefield.dpu_os import BootImage, DpuOs, DpuOsOptions

MODE_PATH = "nvidia/mode/config/mode"
MODES = ("DPU", "NIC")
MAX_BF_CFG = 128 * 1024
CFG_SUFFIX = ".cfg"
GNMI_VERSION = "0.7.0"
INSTALL_ERROR_TYPES = tuple(os_pb2.InstallError.Type.keys())


@dataclass(frozen=True)
class DmsFaults:
    """Failures to inject.

    corrupt_transfer: flip one byte of the first chunk received, so the BFB fails with INTEGRITY_FAIL.
    install_error: an InstallError.Type name (e.g. "TOO_LARGE") returned mid-transfer, after the first chunk.
    reboot_never_completes: after Activate the port closes and never opens again.
    slow_link_bytes_per_s: pace receiving to this rate (0 = off), on top of the install rate.
    reboot_status_lag: RebootStatus goes on saying the reboot is active this many seconds after the DPU is back (its
      port and DPU OS up): a DMS slow to report, so the host's other signal (gossip) can be seen to win.
    """

    corrupt_transfer: bool = False
    install_error: str | None = None
    reboot_never_completes: bool = False
    slow_link_bytes_per_s: float = 0.0
    reboot_status_lag: float = 0.0

    def __post_init__(self) -> None:
        if self.install_error is not None and self.install_error not in INSTALL_ERROR_TYPES:
            raise ValueError(
                f"unknown InstallError type {self.install_error!r}; one of {', '.join(INSTALL_ERROR_TYPES)}"
            )
        if self.reboot_status_lag < 0:
            raise ValueError(f"reboot status lag must be >= 0 s, not {self.reboot_status_lag}")
        if self.slow_link_bytes_per_s < 0:
            raise ValueError(f"slow link rate must be >= 0 bytes/s, not {self.slow_link_bytes_per_s}")


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address {listen!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _now_ns() -> int:
    return time.time_ns()


def _install_error(kind: str, detail: str) -> os_pb2.InstallResponse:
    err = os_pb2.InstallError(type=os_pb2.InstallError.Type.Value(kind), detail=detail)
    return os_pb2.InstallResponse(install_error=err)


def _image_problem(verifier: ImageVerifier) -> tuple[str, str] | None:
    """(InstallError type, detail) when a streamed dpf-sim BFB is not intact, else None."""
    if not verifier.has_trailer():
        return (
            "PARSE_FAIL",
            f"no DPFSIM-SHA256 trailer at the end of the {verifier.size} bytes received: not a dpf-sim BFB",
        )
    if not verifier.ok():
        return (
            "INTEGRITY_FAIL",
            f"sha256 of the {verifier.size - TRAILER_LEN} body bytes does not match the trailer's "
            f"{verifier.claimed_sha256}",
        )
    return None


class EmulatedDms:
    """One DPU's emulated DMS server. `await start()`, read `address`, `await stop()`."""

    def __init__(
        self,
        listen: str = "127.0.0.1:0",
        *,
        tls: TlsFiles | None = None,
        state_dir: Path | None = None,
        install_bytes_per_s: float = 0.0,
        reboot_seconds: float = 1.0,
        progress_every: int = 4 << 20,
        faults: DmsFaults | None = None,
        name: str = "dpu",
        dpu_os: DpuOsOptions | None = None,
    ) -> None:
        self.host, self.port = _split_listen(listen)
        self.name = name
        self.install_bytes_per_s = install_bytes_per_s
        self.reboot_seconds = reboot_seconds
        self.progress_every = max(1, progress_every)
        self.faults = faults or DmsFaults()
        self._credentials = tls.server_credentials() if tls else None
        self.state_dir = state_dir
        self._store = StateStore(state_dir)
        if state_dir is not None and self._store.state.name != name:
            self._store.state.name = name
            self._store.save()
        if dpu_os is not None and state_dir is None:
            raise ValueError(f"emulated DMS {name}: the DPU OS needs a state dir for its root file system")
        self.dpu_os = DpuOs(state_dir, name, dpu_os) if dpu_os is not None and state_dir is not None else None
        self._bf_cfgs: dict[str, bytes] = {}
        self._server: grpc.aio.Server | None = None
        self._installing = False
        self._reboot_task: asyncio.Task[None] | None = None
        self._stopped = False
        self.reboot_active = False
        self.reboot_reason = ""
        self.reboot_when_ns = 0
        self._status_lags_until = 0.0  # loop time until which RebootStatus still says active (faults)
        self.up = asyncio.Event()  # set while the port accepts connections

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """HOST:PORT clients dial (the real port once started with port 0)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def state(self) -> DmsState:
        return self._store.state

    @property
    def installing(self) -> bool:
        """Whether an OS.Install is under way."""
        return self._installing

    async def start(self) -> EmulatedDms:
        """Listen (binds the port; with port 0 the kernel picks one, kept across reboots)."""
        self._stopped = False
        await self._boot_os()  # powered on with an OS installed: it boots
        await self._serve()
        return self

    async def _serve(self) -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((_os_handlers(_OS(self)),))
        system_pb2_grpc.add_SystemServicer_to_server(_System(self), server)
        gnmi_pb2_grpc.add_gNMIServicer_to_server(_Gnmi(self), server)
        where = f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"
        try:
            if self._credentials is not None:
                port = server.add_secure_port(where, self._credentials)
            else:
                port = server.add_insecure_port(where)
        except RuntimeError as e:
            raise OSError(f"emulated DMS {self.name}: cannot listen on {where}: {e}") from None
        if port == 0:
            raise OSError(f"emulated DMS {self.name}: cannot listen on {where} (address in use?)")
        self.port = port
        await server.start()
        self._server = server
        self.up.set()

    async def _close_port(self, grace: float | None) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
        self.up.clear()  # only now: during the grace the listening socket still accepts connections

    async def stop(self) -> None:
        """Stop serving (also ends a reboot in progress)."""
        self._stopped = True
        if self._reboot_task is not None and not self._reboot_task.done():
            self._reboot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reboot_task
        await self._close_port(grace=None)
        if self.dpu_os is not None:
            await self.dpu_os.shutdown()

    async def __aenter__(self) -> EmulatedDms:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def stats(self) -> dict[str, Any]:
        """Counters and the running OS, as `dpf-sim status` shows them."""
        s = self.state
        return {
            "name": self.name,
            "address": self.address,
            "up": self.up.is_set(),
            "rebooting": self.reboot_active,
            "installs": s.installs,
            "activations": s.activations,
            "reboots": s.reboots,
            "mode": s.mode,
            "running_version": s.running_version,
            "running_bf_cfg": s.running_bf_cfg,
            "installed": sorted(s.installed),
            "dpu_os": self.dpu_os.stats() if self.dpu_os is not None else None,
        }

    def bf_cfg(self, version: str) -> bytes | None:
        """Content of an installed bf.cfg (kept in memory, and in the state dir when there is one)."""
        return self._bf_cfgs.get(version) or self._store.image(version)

    def set_mode(self, mode: str) -> None:
        """The DPU mode gNMI Set asked for (DPU or NIC)."""
        self.state.mode = mode
        self._store.save()

    # -- reboot ---------------------------------------------------------------------------------------------

    def begin_reboot(self, reason: str) -> bool:
        """Start a reboot (False if one is already under way)."""
        if self.reboot_active:
            return False
        self.reboot_active = True
        self.reboot_reason = reason
        self.reboot_when_ns = _now_ns()
        self._reboot_task = asyncio.create_task(self._reboot())
        return True

    async def _reboot(self) -> None:
        began = asyncio.get_running_loop().time()
        # Grace lets the RPC that asked for the reboot (Activate, Reboot) finish; new calls are refused.
        await self._close_port(grace=min(0.5, self.reboot_seconds))
        if self.dpu_os is not None:
            await self.dpu_os.shutdown()
        s = self.state
        s.reboots += 1
        self._store.save()
        if self.faults.reboot_never_completes or self._stopped:
            return
        # The emulated boot: the whole outage, from the reboot's start, lasts reboot_seconds.
        await asyncio.sleep(max(0.0, began + self.reboot_seconds - asyncio.get_running_loop().time()))
        if s.next_boot:
            for version in s.next_boot:
                if version.endswith(CFG_SUFFIX):
                    s.running_bf_cfg = version
                else:
                    s.running_version = version
            s.next_boot = []
        self.reboot_active = False
        self._store.save()
        if not self._stopped:
            await self._boot_os()
            await self._serve()
            self._status_lags_until = asyncio.get_running_loop().time() + self.faults.reboot_status_lag

    async def _boot_os(self) -> None:
        """Boot the DPU OS of the running install (nothing without DPU OS emulation or an install)."""
        s = self.state
        if self.dpu_os is None or not s.running_version:
            return
        bf_cfg = self.bf_cfg(s.running_bf_cfg) if s.running_bf_cfg else None
        image = BootImage(
            bfb=s.running_version, bf_cfg_version=s.running_bf_cfg, bf_cfg=bf_cfg, activation=s.activations
        )
        await self.dpu_os.boot(image)

    # -- install --------------------------------------------------------------------------------------------

    def _pace_rate(self) -> float:
        rates = [r for r in (self.install_bytes_per_s, self.faults.slow_link_bytes_per_s) if r > 0]
        return min(rates) if rates else 0.0

    async def install(
        self, requests: AsyncIterator[os_pb2.InstallRequest | memoryview]
    ) -> AsyncIterator[os_pb2.InstallResponse]:
        """The OS.Install conversation (one at a time; a second concurrent one gets INSTALL_IN_PROGRESS)."""
        first = await anext(requests, None)
        if first is None:
            return
        if isinstance(first, memoryview) or first.WhichOneof("request") != "transfer_request":
            yield _install_error("UNSPECIFIED", "the first InstallRequest must be a transfer_request")
            return
        if self._installing:
            yield _install_error("INSTALL_IN_PROGRESS", "another Install RPC is in progress on this DPU")
            return
        self._installing = True
        try:
            async for resp in self._install(first.transfer_request, requests):
                yield resp
        finally:
            self._installing = False

    async def _install(
        self, req: os_pb2.TransferRequest, requests: AsyncIterator[os_pb2.InstallRequest | memoryview]
    ) -> AsyncIterator[os_pb2.InstallResponse]:
        version = req.version
        is_cfg = version.endswith(CFG_SUFFIX)
        if not version or "/" in version or version.startswith("."):
            yield _install_error("UNSPECIFIED", f"version {version!r} must be a plain file name (it names the image)")
            return
        if req.standby_supervisor:
            yield _install_error("NOT_SUPPORTED_ON_BACKUP", "a DPU has no standby supervisor")
            return
        if is_cfg and req.package_size > MAX_BF_CFG:
            yield _install_error("TOO_LARGE", f"bf.cfg of {req.package_size} bytes exceeds {MAX_BF_CFG} bytes")
            return
        if not is_cfg and version in self.state.installed:
            yield os_pb2.InstallResponse(validated=os_pb2.Validated(version=version, description="already installed"))
            return
        yield os_pb2.InstallResponse(transfer_ready=os_pb2.TransferReady())

        verifier = None if is_cfg else ImageVerifier()
        cfg = bytearray()
        received = 0
        next_progress = self.progress_every
        rate = self._pace_rate()
        loop = asyncio.get_running_loop()
        started = loop.time()
        ended = False
        async for msg in requests:
            if isinstance(msg, memoryview):  # content, as parse_install_request hands it over
                chunk: bytes | memoryview = msg
            else:
                which = msg.WhichOneof("request")
                if which == "transfer_end":
                    ended = True
                    break
                if which != "transfer_content":
                    yield _install_error("UNSPECIFIED", f"unexpected {which} during the transfer")
                    return
                chunk = msg.transfer_content
            if self.faults.corrupt_transfer and received == 0 and chunk:
                flipped = bytearray(chunk)
                flipped[len(flipped) // 2] ^= 0xFF
                chunk = bytes(flipped)
            received += len(chunk)
            if is_cfg:
                if received > MAX_BF_CFG:
                    yield _install_error("TOO_LARGE", f"bf.cfg exceeds {MAX_BF_CFG} bytes")
                    return
                cfg += chunk
            else:
                assert verifier is not None
                verifier.feed(chunk)
            if self.faults.install_error:
                yield _install_error(self.faults.install_error, f"injected fault after {received} bytes")
                return
            if rate:
                delay = started + received / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # the emulated link/flash speed
            if received >= next_progress:
                next_progress = received + self.progress_every
                yield os_pb2.InstallResponse(transfer_progress=os_pb2.TransferProgress(bytes_received=received))
        if not ended:
            return  # the client went away without TransferEnd: nothing is installed

        if req.package_size and req.package_size != received:
            yield _install_error(
                "INTEGRITY_FAIL", f"received {received} bytes, but the TransferRequest announced {req.package_size}"
            )
            return
        if is_cfg:
            data = bytes(cfg)
            image = InstalledImage(size=received, sha256=_sha256(data), kind="bf.cfg")
            self._bf_cfgs[version] = data
            self._store.save_image(version, data)
        else:
            assert verifier is not None
            problem = _image_problem(verifier)
            if problem:
                yield _install_error(*problem)
                return
            image = InstalledImage(size=received, sha256=verifier.claimed_sha256, kind="bfb")
        self.state.installed[version] = image
        self.state.installs += 1
        self._store.save()
        desc = f"{image.kind}, {received} bytes, sha256 {image.sha256}"
        yield os_pb2.InstallResponse(validated=os_pb2.Validated(version=version, description=desc))

    # -- activate -------------------------------------------------------------------------------------------

    def activate(self, req: os_pb2.ActivateRequest) -> os_pb2.ActivateResponse:
        """OS.Activate: `<bfb>[;<cfg>]`, each installed; reboots unless no_reboot."""

        def error(kind: str, detail: str) -> os_pb2.ActivateResponse:
            err = os_pb2.ActivateError(type=os_pb2.ActivateError.Type.Value(kind), detail=detail)
            return os_pb2.ActivateResponse(activate_error=err)

        if req.standby_supervisor:
            return error("NOT_SUPPORTED_ON_BACKUP", "a DPU has no standby supervisor")
        parts = [p for p in req.version.split(";") if p]
        if not parts:
            return error("NON_EXISTENT_VERSION", "empty version")
        missing = [p for p in parts if p not in self.state.installed]
        if missing:
            return error("NON_EXISTENT_VERSION", f"not installed: {', '.join(missing)}")
        if self.reboot_active:
            return error("UNSPECIFIED", "a reboot is already in progress")
        self.state.activations += 1
        self.state.next_boot = parts
        self._store.save()
        if not req.no_reboot:
            self.begin_reboot(f"activate {req.version}")
        return os_pb2.ActivateResponse(activate_ok=os_pb2.ActivateOK())

    def reboot_status(self) -> system_pb2.RebootStatusResponse:
        """RebootStatus: active while rebooting; afterwards inactive with STATUS_SUCCESS."""
        if self.reboot_active or asyncio.get_running_loop().time() < self._status_lags_until:
            return system_pb2.RebootStatusResponse(
                active=True, when=self.reboot_when_ns, reason=self.reboot_reason, method=system_pb2.COLD,
                count=self.state.reboots,
            )  # fmt: skip
        return system_pb2.RebootStatusResponse(
            active=False, when=self.reboot_when_ns, reason=self.reboot_reason, count=self.state.reboots,
            method=system_pb2.COLD,
            status=system_pb2.RebootStatus(status=system_pb2.RebootStatus.STATUS_SUCCESS),
        )  # fmt: skip


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cpu_only(paths: Sequence[Any]) -> str | None:
    """An error message unless every subcomponent path is CPU (what DPF asks about)."""
    for p in paths:
        names = [e.name for e in p.elem]
        if names != ["CPU"]:
            return f"unknown subcomponent {'/'.join(names) or '(empty path)'}; this DMS knows CPU"
    return None


class _OS(os_pb2_grpc.OSServicer):
    def __init__(self, dms: EmulatedDms) -> None:
        self.dms = dms

    async def Install(
        self, request_iterator: AsyncIterator[os_pb2.InstallRequest | memoryview], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[os_pb2.InstallResponse]:
        async for resp in self.dms.install(request_iterator):
            yield resp

    async def Activate(
        self, request: os_pb2.ActivateRequest, context: grpc.aio.ServicerContext
    ) -> os_pb2.ActivateResponse:
        return self.dms.activate(request)

    async def Verify(self, request: os_pb2.VerifyRequest, context: grpc.aio.ServicerContext) -> os_pb2.VerifyResponse:
        return os_pb2.VerifyResponse(version=self.dms.state.running_version)


def _os_handlers(servicer: _OS) -> grpc.GenericRpcHandler:
    """The OS service as add_OSServicer_to_server registers it, but Install parses content without copying it."""
    return grpc.method_handlers_generic_handler(
        os_pb2.DESCRIPTOR.services_by_name["OS"].full_name,
        {
            "Install": grpc.stream_stream_rpc_method_handler(
                servicer.Install,
                request_deserializer=parse_install_request,
                response_serializer=os_pb2.InstallResponse.SerializeToString,
            ),
            "Activate": grpc.unary_unary_rpc_method_handler(
                servicer.Activate,
                request_deserializer=os_pb2.ActivateRequest.FromString,
                response_serializer=os_pb2.ActivateResponse.SerializeToString,
            ),
            "Verify": grpc.unary_unary_rpc_method_handler(
                servicer.Verify,
                request_deserializer=os_pb2.VerifyRequest.FromString,
                response_serializer=os_pb2.VerifyResponse.SerializeToString,
            ),
        },
    )


class _System(system_pb2_grpc.SystemServicer):
    def __init__(self, dms: EmulatedDms) -> None:
        self.dms = dms

    async def Time(self, request: system_pb2.TimeRequest, context: grpc.aio.ServicerContext) -> system_pb2.TimeResponse:
        return system_pb2.TimeResponse(time=_now_ns())

    async def RebootStatus(
        self, request: system_pb2.RebootStatusRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.RebootStatusResponse:
        problem = _cpu_only(request.subcomponents)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return self.dms.reboot_status()

    async def Reboot(
        self, request: system_pb2.RebootRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.RebootResponse:
        if request.method != system_pb2.COLD:
            method = system_pb2.RebootMethod.Name(request.method)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"reboot method {method} not supported; use COLD")
        if request.delay:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "delayed reboots are not supported")
        problem = _cpu_only(request.subcomponents)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        if not self.dms.begin_reboot(request.message or "System.Reboot"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "a reboot is already in progress")
        return system_pb2.RebootResponse()


class _Gnmi(gnmi_pb2_grpc.gNMIServicer):
    def __init__(self, dms: EmulatedDms) -> None:
        self.dms = dms

    async def Capabilities(
        self, request: gnmi_pb2.CapabilityRequest, context: grpc.aio.ServicerContext
    ) -> gnmi_pb2.CapabilityResponse:
        return gnmi_pb2.CapabilityResponse(
            gNMI_version=GNMI_VERSION, supported_encodings=[gnmi_pb2.JSON, gnmi_pb2.JSON_IETF, gnmi_pb2.ASCII]
        )

    async def Set(self, request: gnmi_pb2.SetRequest, context: grpc.aio.ServicerContext) -> gnmi_pb2.SetResponse:
        if request.delete:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "delete is not supported by this DMS")
        prefix = [e.name for e in request.prefix.elem]
        results = []
        changes: list[str] = []
        for op, updates in (
            (gnmi_pb2.UpdateResult.REPLACE, request.replace),
            (gnmi_pb2.UpdateResult.UPDATE, request.update),
        ):
            for u in updates:
                path = "/".join(prefix + [e.name for e in u.path.elem])
                if path != MODE_PATH:
                    await context.abort(
                        grpc.StatusCode.NOT_FOUND, f"path {path!r} is not supported; this DMS sets {MODE_PATH}"
                    )
                mode = _mode_value(u.val)
                if mode is None:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, f"{MODE_PATH} must be one of {', '.join(MODES)}, got {u.val}"
                    )
                assert mode is not None
                changes.append(mode)
                results.append(gnmi_pb2.UpdateResult(path=u.path, op=op))
        for mode in changes:  # applied only once every update is valid: a Set is one transaction
            self.dms.set_mode(mode)
        return gnmi_pb2.SetResponse(prefix=request.prefix, response=results, timestamp=_now_ns())


def _mode_value(val: gnmi_pb2.TypedValue) -> str | None:
    kind = val.WhichOneof("value")
    if kind in ("string_val", "ascii_val"):
        text = getattr(val, kind)
    elif kind in ("json_val", "json_ietf_val"):
        try:
            text = json.loads(getattr(val, kind))
        except ValueError:
            return None
    else:
        return None
    if not isinstance(text, str) or text.upper() not in MODES:
        return None
    return text.upper()


async def start(**kwargs: Any) -> EmulatedDms:
    """Start an emulated DMS in this process (arguments as for EmulatedDms) and return it."""
    return await EmulatedDms(**kwargs).start()


# -- command line -----------------------------------------------------------------------------------------------


def parse_fault(text: str, faults: DmsFaults) -> DmsFaults:
    """Apply one `--fault` value: corrupt | install-error[=TYPE] | reboot-hang | status-lag=S | slow-link=BYTES_PER_S."""
    name, _, value = text.partition("=")
    if name == "corrupt" and not value:
        return replace(faults, corrupt_transfer=True)
    if name == "install-error":
        return replace(faults, install_error=value or "UNSPECIFIED")
    if name == "reboot-hang" and not value:
        return replace(faults, reboot_never_completes=True)
    try:
        if name == "slow-link":
            return replace(faults, slow_link_bytes_per_s=float(value))
        if name == "status-lag":
            return replace(faults, reboot_status_lag=float(value))
    except ValueError:
        pass
    raise ValueError(
        f"bad --fault {text!r}: use corrupt, install-error[=TYPE], reboot-hang, status-lag=S or slow-link=BYTES_PER_S"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dms_server", description="Emulated NVIDIA DMS (gNOI OS/System, gNMI) of one DPU")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The server's options (also `dpf-sim bluefield`'s)."""
    p.add_argument("--listen", required=True, help="HOST:PORT (port 0: pick one)")
    p.add_argument("--name", default="dpu", help="DPU name (logs and stats)")
    p.add_argument("--insecure", action="store_true", help="no TLS")
    p.add_argument("--ca", type=Path, help="CA that signs accepted client certificates")
    p.add_argument("--cert", type=Path, help="server certificate (PEM)")
    p.add_argument("--key", type=Path, help="server key (PEM)")
    p.add_argument("--state-dir", type=Path, help="keep installed images, counters and the running OS here")
    p.add_argument("--install-rate", type=float, default=0.0, help="install speed in bytes/s (0: unthrottled)")
    p.add_argument("--reboot-seconds", type=float, default=1.0, help="how long a reboot keeps the port closed")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        help="corrupt | install-error[=TYPE] | reboot-hang | status-lag=S | slow-link=B/S",
    )


def server_config(args: argparse.Namespace) -> dict[str, Any]:
    tls_args = (args.ca, args.cert, args.key)
    if args.insecure and any(tls_args):
        raise ValueError("--insecure and --ca/--cert/--key are exclusive")
    if not args.insecure and not all(tls_args):
        raise ValueError("give --ca, --cert and --key (mTLS), or --insecure")
    faults = DmsFaults()
    for f in args.fault:
        faults = parse_fault(f, faults)
    return {
        "listen": args.listen,
        "name": args.name,
        "tls": None if args.insecure else TlsFiles(args.ca, args.cert, args.key),
        "state_dir": args.state_dir,
        "install_bytes_per_s": args.install_rate,
        "reboot_seconds": args.reboot_seconds,
        "faults": faults,
    }


async def _serve_until_signalled(config: dict[str, Any]) -> None:
    dms = await start(**config)
    await serve_until_signalled(dms, f"emulated DMS {dms.name} listening on {dms.address}")


async def serve_until_signalled(dms: EmulatedDms, banner: str) -> None:
    """Print `banner`, serve until SIGINT or SIGTERM, stop, and print the DMS's counts as JSON."""
    print(banner, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await dms.stop()
    print(json.dumps(dms.stats(), sort_keys=True), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dpfd.sim.bluefield.dms_server --listen HOST:PORT ...`; runs until SIGINT/SIGTERM."""
    args = _parser().parse_args(argv)
    try:
        config = server_config(args)
        if config["state_dir"] is not None:
            config["state_dir"].mkdir(parents=True, exist_ok=True)
        asyncio.run(_serve_until_signalled(config))
    except (ValueError, OSError) as e:
        print(f"dms_server: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
