"""A read-only picture of the membership for the rest of dpfd (and the controller): who is there, in which state,
and what they said about themselves; plus a subscription to changes."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from dpfd.gossip.meta import MemberMeta, MetaError
from dpfd.gossip.state import Member


class MemberChange(enum.Enum):
    JOINED = "joined"  # new, or back from dead or left
    UPDATED = "updated"  # metadata changed
    FAILED = "failed"  # declared dead by the failure detector
    LEFT = "left"  # left gracefully


@dataclass(frozen=True, slots=True)
class MemberInfo:
    name: str
    addr: str
    state: str  # alive, suspect, dead, left
    incarnation: int
    meta: MemberMeta | None  # None when the member's metadata does not decode (an older or foreign version)

    @classmethod
    def of(cls, m: Member) -> MemberInfo:
        try:
            meta: MemberMeta | None = MemberMeta.decode(m.meta) if m.meta else None
        except MetaError:
            meta = None
        return cls(m.name, m.addr, m.state.value, m.incarnation, meta)

    @property
    def alive(self) -> bool:
        return self.state == "alive"

    @property
    def role(self) -> str:
        return self.meta.role if self.meta is not None else ""


MemberListener = Callable[[MemberChange, MemberInfo], None]
