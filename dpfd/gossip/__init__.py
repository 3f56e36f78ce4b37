"""Gossip membership: SWIM with Lifeguard (issue 5).

This package starts with its transport-free layer: the parameters (`config`), the member state machine with
incarnation numbers and refutation (`state`), and the Lifeguard pieces (`lifeguard`). Everything here is pure and
clock-injected, so the simulation and the real UDP transport drive the same code.
"""
