"""Gossip membership: SWIM with Lifeguard, after hashicorp/memberlist (issue 5; docs/architecture.md, "Gossip").

Pure, clock-injected parts: the parameters (`config`), the member state machine (`state`), Lifeguard's timers and
health (`lifeguard`), the dissemination queue (`broadcast`), the messages and their encoding (`messages`, `wire`),
sealing (`keyring`), and the engine (`node`), which talks to the world only through a `runtime.Runtime`. The real
runtime is `transport` (UDP and TCP under asyncio); the simulated one is `dpfd.sim.gossipnet`. `agent` runs a member
inside a process (seeds from etcd, rejoin, listeners); `meta` and `view` are what the rest of dpf reads.
"""
