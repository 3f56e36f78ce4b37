"""The messages gossip members exchange, as plain values (memberlist's ``net.go`` message types).

Membership updates (``Alive``, ``Suspect``, ``Dead``) live in ``state``; this module adds the probe messages and the
push-pull state that travels over streams. ``wire`` turns them into bytes and back."""

from __future__ import annotations

from dataclasses import dataclass

from dpfd.gossip.state import Alive, Dead, MemberState, Suspect


@dataclass(frozen=True, slots=True)
class Ping:
    """A direct probe of ``node``; the target checks the name so a reused address is not mistaken for it."""

    seq: int
    node: str
    source: str
    source_addr: str


@dataclass(frozen=True, slots=True)
class IndirectPing:
    """Ask a helper to probe ``node`` at ``addr`` for us; ``nack`` asks it to say so when the target is silent."""

    seq: int
    node: str
    addr: str
    source: str
    source_addr: str
    nack: bool = True


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Nack:
    """A helper's answer to an indirect ping whose target did not answer: the helper itself is alive and well."""

    seq: int


@dataclass(frozen=True, slots=True)
class PushNodeState:
    name: str
    addr: str
    meta: bytes
    incarnation: int
    state: MemberState


@dataclass(frozen=True, slots=True)
class PushPull:
    """A full-state exchange over a stream (anti-entropy and join). ``join`` is set when the sender is joining."""

    join: bool
    states: tuple[PushNodeState, ...]


# What a datagram carries: one or more of these, packed together.
PacketMessage = Ping | IndirectPing | Ack | Nack | Alive | Suspect | Dead
# What a stream request or reply carries: one of these.
StreamMessage = Ping | Ack | PushPull
