"""The free ports dpf-sim hands its services: outside the range outgoing connections take theirs from."""

from __future__ import annotations

import socket

import pytest

from dpfd.sim import ports


def test_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    got = [ports.free_port() for _ in range(300)]
    assert len(set(got)) == len(got)
    assert not set(got) & set(ports._ephemeral_range())
    assert all(10000 <= p < 30000 for p in got), "node ports (30000-32767) belong to the emulated Kamaji"


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        taken = udp.getsockname()[1]
        spare = ports.free_port()
        ports._given.discard(spare)
        # The picker's first guess is the port in use (for UDP only: a gossip member needs TCP and UDP at one port).
        guesses = iter([taken, spare])
        monkeypatch.setattr(ports.random, "randrange", lambda *_: next(guesses))
        monkeypatch.setattr(ports, "_ephemeral_range", lambda: range(0))
        assert ports.free_port() == spare
