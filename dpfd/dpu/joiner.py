"""Join the DPU cluster once: render the JoinConfiguration, run kubeadm, retry with backoff until it works.

A marker file in the state dir records the success, so a restarted dpfd does not join again (kubeadm would
refuse anyway: the node's kubelet.conf exists). A reflashed DPU has a fresh state dir and joins again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from dpfd.agent.backoff import Backoff
from dpfd.agent.log import EventLog
from dpfd.agent.statefile import write_atomic
from dpfd.api.conditions import now_rfc3339
from dpfd.dpu.join_config import write_join_configuration
from dpfd.dpu.kubeadm_run import JoinError, run_kubeadm_join
from dpfd.dpu.settings import JoinSettings

JOIN_DIR = "kubeadm"
CONFIG_FILE = "join-config.yaml"
MARKER_FILE = "joined.json"
DEFAULT_BACKOFF = Backoff(base=2.0, cap=60.0)

log = EventLog(logging.getLogger("dpfd.dpu.join"))


class Joiner:
    """Runs `kubeadm join` for this DPU until it succeeds once."""

    def __init__(
        self,
        settings: JoinSettings,
        node: str,
        state_dir: Path,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.node_name = settings.node_name or node
        self.dir = state_dir / JOIN_DIR
        self.backoff = backoff
        self.env = env
        self.attempts = 0
        self.last_error: str | None = None

    @property
    def config_path(self) -> Path:
        return self.dir / CONFIG_FILE

    @property
    def marker_path(self) -> Path:
        return self.dir / MARKER_FILE

    def joined(self) -> bool:
        return self.marker_path.exists()

    async def run(self) -> None:
        """Return once joined (at once if the marker says so); retry failures forever, with backoff."""
        endpoint = self.settings.api_server_endpoint
        if self.joined():
            log.info("join_skipped", node=self.node_name, reason=f"{self.marker_path} exists: joined before")
            return
        while True:
            self.attempts += 1
            try:
                await self.attempt()
            except (JoinError, OSError) as e:
                self.last_error = str(e)
                delay = self.backoff.delay(self.attempts)
                log.warning(
                    "join_failed", node=self.node_name, endpoint=endpoint, attempt=self.attempts,
                    error=self.last_error, retry_in=f"{delay:.2f}s",
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            self.last_error = None
            log.info("joined", node=self.node_name, endpoint=endpoint, attempts=self.attempts)
            return

    async def attempt(self) -> None:
        """One join: write the config (0600), run kubeadm, record success and drop the token-bearing file."""
        write_join_configuration(self.config_path, self.settings, self.node_name)
        await run_kubeadm_join(self.settings.kubeadm, self.config_path, self.settings.timeout, env=self.env)
        marker = {"node": self.node_name, "apiServerEndpoint": self.settings.api_server_endpoint,
                  "joinedAt": now_rfc3339()}  # fmt: skip
        write_atomic(self.marker_path, (json.dumps(marker, sort_keys=True) + "\n").encode())
        with contextlib.suppress(OSError):
            self.config_path.unlink()  # the bootstrap token is not needed any more


class DpuRole:
    """What the dpu role runs besides the agent's reconcilers: for now, the one-time cluster join."""

    def __init__(self, settings: JoinSettings | None, node: str, state_dir: Path) -> None:
        self.joiner = Joiner(settings, node, state_dir) if settings is not None else None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> DpuRole:
        if self.joiner is None:
            log.info("join_not_configured", reason="the config has no join: section")
        else:
            self._task = asyncio.get_running_loop().create_task(self._join(self.joiner), name="kubeadm-join")
        return self

    @staticmethod
    async def _join(joiner: Joiner) -> None:
        try:
            await joiner.run()
        except Exception as e:  # a bug, not a failed join (those are retried): say so rather than die silently
            log.error("join_crashed", node=joiner.node_name, error=f"{type(e).__name__}: {e}", exc_info=True)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
