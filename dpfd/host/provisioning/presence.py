"""DpuPresence from gossip: a DPU's own dpfd is the member with role dpu that names this host and the DPU's PCI
address in its metadata (the host wrote both into its dpfd.yaml through bf.cfg)."""

from __future__ import annotations

from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.meta import pci_slot
from dpfd.gossip.view import MemberInfo


class GossipDpuPresence:
    def __init__(self, gossip: GossipAgent) -> None:
        self.gossip = gossip

    def _dpfd_starts(self, members: list[MemberInfo], host: str, pci_address: str) -> list[float]:
        pci = pci_slot(pci_address)
        return [
            m.meta.started
            for m in members
            if m.alive
            and m.meta is not None
            and m.meta.role == "dpu"
            and m.meta.host == host
            and pci_slot(m.meta.pci) == pci
        ]

    def started(self, host: str, pci_address: str) -> float | None:
        starts = self._dpfd_starts(self.gossip.members(), host, pci_address)
        return max(starts) if starts else None

    async def wait_started(self, host: str, pci_address: str, *, after: float, not_at: float, within: float) -> bool:
        def back(members: list[MemberInfo]) -> bool:
            return any(s > after and s != not_at for s in self._dpfd_starts(members, host, pci_address))

        return await self.gossip.wait_for(back, within)
