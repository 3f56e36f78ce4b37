"""A real host dpfd process (`python -m dpfd.daemon --config FILE run`) for the provisioning kill tests, and the
emulated host around it: a BlueField in an emulated sysfs tree, br-dpu in a fresh network namespace, its DMS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from dpfd.api.intents import Intent, ObjectRef
from dpfd.store import Store, keys
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[3]
NS = "dpf-operator-system"
PCI = "0000-03-00"
JOIN = ("kubeadm join 203.0.113.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:"
        + "a" * 64)  # fmt: skip


def host_config(home: Path, node: str, endpoints: list[str], *, sysfs: Path, netns: str, dms: str,
                power_file: Path) -> dict[str, Any]:  # fmt: skip
    """A host dpfd config with fast timers (seconds, not minutes) and dpf-sim's emulated host power."""
    return {
        "node": node,
        "role": "host",
        "etcd": {"endpoints": endpoints},
        "stateDir": str(home / "state"),
        "runtimeDir": str(home / "run"),
        "sessionTTL": 2,
        "logLevel": "info",
        "sysfsRoot": str(sysfs),
        "provisioning": {
            "retryBase": 0.2,
            "retryCap": 1.0,
            "recheckInterval": 0.2,
            "dpuRebootTimeout": 60,
            "hostNetworkTimeout": 60,
            "netns": netns,
            "dms": {"targets": {PCI: dms}, "insecure": True, "readyTimeout": 120, "rebootPoll": 0.1},
            "hostPower": {"emulated": {"stateFile": str(power_file), "rebootSeconds": 0.3}, "rebootTimeout": 30},
        },
    }


class DpfdProcess:
    """One dpfd process; `start()` again after `kill()` is the same host coming back (same config, same state)."""

    def __init__(self, home: Path, config: dict[str, Any]) -> None:
        self.home = home
        self.node = str(config["node"])
        home.mkdir(parents=True, exist_ok=True)
        self.config_path = home / "dpfd.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = home / "dpfd.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> asyncio.subprocess.Process:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for name in ("DPFD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dpfd.daemon", "--config", str(self.config_path), "run",
                cwd=REPO, env=env, stdout=log, stderr=log,
            )  # fmt: skip
        return self.proc

    async def kill(self) -> None:
        """SIGKILL: no cleanup at all, as a crash or power loss of the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 10.0)

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 20.0)

    async def cleanup(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text()[-tail:] if self.log_path.exists() else ""

    async def token(self, store: Store) -> int:
        """The running process's fencing token (its registration's revision): its reports carry it."""
        assert self.proc is not None
        pid = self.proc.pid

        async def registered() -> int:
            kv = await store.get(keys.member_key(self.node))
            return kv.mod_revision if kv is not None and json.loads(kv.value).get("pid") == pid else 0

        token: int = await eventually(registered, 20.0, f"dpfd pid {pid} registered as {self.node}", poll=0.05)
        return token


def dpu_intent(node: str, name: str, bfb_url: str, **context: Any) -> Intent:
    """What the controller writes for a DPU once it has resolved the BFB, flavor and cluster."""
    return Intent(
        node=node,
        ref=ObjectRef(kind="DPU", namespace=NS, name=name),
        uid=f"uid-{name}",
        generation=1,
        spec={
            "nodeName": node,
            "bfb": "bf-bundle",
            "pciAddress": PCI,
            "dpuFlavor": "hbn",
            "nodeEffect": {"noEffect": True},
            "automaticNodeReboot": True,
        },
        context={
            "bfb": {"name": "bf-bundle", "url": bfb_url, "fileName": "bf-bundle-2.9.bfb", "phase": "Ready"},
            "flavor": {},
            "cluster": {"name": "dpu-cplane", "namespace": NS, "joinCommand": JOIN},
            "nodeEffect": {"applied": True, "message": ""},
            **context,
        },
    )


async def put_intent(store: Store, intent: Intent) -> None:
    await store.put(keys.intent_key(intent.node, intent.ref), intent.model_dump_json())


async def report(store: Store, node: str, ref: ObjectRef) -> dict[str, Any] | None:
    kv = await store.get(keys.report_key(node, ref))
    if kv is None:
        return None
    value: dict[str, Any] = json.loads(kv.value)
    return value
