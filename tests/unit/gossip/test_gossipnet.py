"""The simulated gossip network: virtual clock, datagram loss/delay, partitions, crashes, streams, determinism, speed."""

from __future__ import annotations

import time

import pytest

from dpfd.sim.gossipnet import DEFAULT_DELAY, DEFAULT_EPOCH, MAX_DATAGRAM, SimNetwork, SimRuntime, VirtualClock

FIXED = (0.01, 0.01)  # a fixed one-way delay makes arrival times exact


class Recorder:
    """Records what arrives, with the virtual time; answers streams with b"re:" + request."""

    def __init__(self, clock: VirtualClock, trace: list[tuple[object, ...]] | None = None, name: str = "") -> None:
        self.clock = clock
        self.name = name
        self.packets: list[tuple[float, bytes, str]] = []
        self.requests: list[tuple[float, bytes, str]] = []
        self.trace = trace
        self.answer: bool = True

    def on_packet(self, data: bytes, from_addr: str) -> None:
        self.packets.append((self.clock.now, data, from_addr))
        if self.trace is not None:
            self.trace.append(("packet", self.clock.now, from_addr, self.name, data))

    def on_stream(self, data: bytes, from_addr: str) -> bytes | None:
        self.requests.append((self.clock.now, data, from_addr))
        if self.trace is not None:
            self.trace.append(("stream", self.clock.now, from_addr, self.name, data))
        return b"re:" + data if self.answer else None


def make_net(
    n: int = 3, *, loss: float = 0.0, delay: tuple[float, float] = DEFAULT_DELAY, bandwidth: float | None = None
) -> tuple[VirtualClock, SimNetwork, list[SimRuntime], list[Recorder]]:
    clock = VirtualClock()
    net = SimNetwork(clock, seed=7, loss=loss, delay=delay, bandwidth=bandwidth)
    recorders = [Recorder(clock, name=f"m{i}") for i in range(n)]
    runtimes = [net.attach(f"m{i}", recorders[i]) for i in range(n)]
    return clock, net, runtimes, recorders


class Replies:
    """Collects on_reply calls with their virtual time."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.got: list[tuple[float, bytes | None]] = []

    def __call__(self, reply: bytes | None) -> None:
        self.got.append((self.clock.now, reply))


# -- the clock -------------------------------------------------------------------------------------------------


def test_clock_runs_equal_times_in_scheduling_order_and_stops_at_t() -> None:
    clock = VirtualClock()
    order: list[str] = []
    clock.call_at(2.0, lambda: order.append("late"))
    for name in "abc":
        clock.call_at(1.0, lambda name=name: order.append(name))
    clock.call_later(0.5, lambda: order.append("early"))
    clock.run_until(1.5)
    assert order == ["early", "a", "b", "c"]
    assert clock.now == 1.5
    clock.run_for(1.0)
    assert order[-1] == "late" and clock.now == 2.5
    assert clock.wall() == DEFAULT_EPOCH + 2.5
    assert clock.events_run == 5


def test_clock_cancel_skips_the_callback_and_past_times_run_now() -> None:
    clock = VirtualClock()
    fired: list[str] = []
    timer = clock.call_later(1.0, lambda: fired.append("cancelled"))
    clock.call_later(1.0, lambda: fired.append("kept"))
    timer.cancel()
    clock.run_for(2.0)
    assert fired == ["kept"]
    clock.call_at(0.5, lambda: fired.append(f"at {clock.now}"))  # in the past: runs at now, time never goes back
    clock.run_for(0.0)
    assert fired[-1] == "at 2.0"


def test_clock_events_scheduled_from_events_run_in_the_same_run() -> None:
    clock = VirtualClock()
    times: list[float] = []

    def tick() -> None:
        times.append(clock.now)
        if len(times) < 5:
            clock.call_later(0.25, tick)

    clock.call_later(0.0, tick)
    clock.run_until(10.0)
    assert times == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_run_until_true_returns_the_check_time_or_none() -> None:
    clock = VirtualClock()
    flag: list[bool] = []
    clock.call_at(3.05, lambda: flag.append(True))
    assert clock.run_until_true(lambda: bool(flag), deadline=10.0, check_every=0.1) == pytest.approx(3.1)
    assert clock.run_until_true(lambda: False, deadline=5.0, check_every=0.5) is None
    assert clock.now == 5.0


def test_run_until_refuses_to_run_inside_an_event() -> None:
    clock = VirtualClock()
    errors: list[Exception] = []

    def nested() -> None:
        try:
            clock.run_for(1.0)
        except RuntimeError as e:
            errors.append(e)

    clock.call_later(0.1, nested)
    clock.run_for(1.0)
    assert len(errors) == 1


# -- datagrams -------------------------------------------------------------------------------------------------


def test_datagram_delays_stay_within_the_range_and_link_overrides_apply() -> None:
    clock, net, (a, _, _), (_, rb, rc) = make_net(delay=(0.002, 0.008))
    net.set_link_delay("m0", "m2", (0.5, 0.6))
    for i in range(200):
        clock.call_at(i * 0.01, lambda: a.send_packet("m1", str(clock.now).encode()))
        clock.call_at(i * 0.01, lambda: a.send_packet("m2", str(clock.now).encode()))
    clock.run_for(5.0)
    lags_b = [t - float(data) for t, data, _ in rb.packets]
    lags_c = [t - float(data) for t, data, _ in rc.packets]
    assert len(lags_b) == 200 and len(lags_c) == 200
    assert min(lags_b) >= 0.002 and max(lags_b) <= 0.008
    assert max(lags_b) - min(lags_b) > 0.005  # drawn from the whole range, not a constant
    assert min(lags_c) >= 0.5 and max(lags_c) <= 0.6
    assert {src for _, _, src in rb.packets} == {"m0"}


def test_loss_rate_is_close_to_p_and_link_loss_is_directed() -> None:
    clock, net, (a, b, _), (ra, rb, _) = make_net(loss=0.1)
    n = 20_000
    for _ in range(n):
        a.send_packet("m1", b"x")
    clock.run_for(1.0)
    lost = net.dropped["loss"]
    assert lost + len(rb.packets) == n
    # sd of the loss fraction is 0.0021 at n=20000: 0.01 is ~5 sd, and the seed is fixed anyway
    assert abs(lost / n - 0.1) < 0.01

    net.set_loss(0.0)
    net.set_link_loss("m0", "m1", 1.0)
    for _ in range(100):
        a.send_packet("m1", b"x")
        b.send_packet("m0", b"y")
    clock.run_for(1.0)
    assert len(rb.packets) == n - lost and len(ra.packets) == 100
    net.set_link_loss("m0", "m1", None)
    a.send_packet("m1", b"x")
    clock.run_for(1.0)
    assert len(rb.packets) == n - lost + 1


def test_handlers_never_run_inside_the_sending_call() -> None:
    clock, _, (a, _, _), (_, rb, _) = make_net(delay=(0.0, 0.0))
    a.send_packet("m1", b"x")
    assert rb.packets == []
    clock.run_for(0.0)
    assert rb.packets == [(0.0, b"x", "m0")]


def test_bandwidth_serialises_a_burst_on_the_senders_uplink() -> None:
    clock, _, (a, _, _), (_, rb, _) = make_net(delay=(0.0, 0.0), bandwidth=10_000.0)
    for _ in range(5):
        a.send_packet("m1", b"x" * 1000)  # 0.1 s each at 10 kB/s
    clock.run_for(1.0)
    assert [t for t, _, _ in rb.packets] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_oversized_datagram_and_unknown_or_unbound_destinations() -> None:
    clock, net, (a, _, _), _ = make_net()
    with pytest.raises(ValueError, match="exceeds"):
        a.send_packet("m1", b"x" * (MAX_DATAGRAM + 1))
    a.send_packet("nobody", b"x")
    net.attach("late")  # no handler yet
    a.send_packet("late", b"x")
    clock.run_for(1.0)
    assert net.dropped["unknown"] == 1 and net.dropped["unbound"] == 1
    recorder = Recorder(clock)
    net.runtime("late").bind(recorder)
    a.send_packet("late", b"now")
    clock.run_for(1.0)
    assert [data for _, data, _ in recorder.packets] == [b"now"]


# -- partitions ------------------------------------------------------------------------------------------------


def test_partition_blocks_datagrams_both_ways_and_heal_restores() -> None:
    clock, net, (a, b, c, _), (ra, rb, _, _) = make_net(4)
    net.partition([{"m0"}, {"m1"}])  # m2 and m3 are in no group: together they form one more
    assert not net.reachable("m0", "m1") and not net.reachable("m1", "m2") and net.reachable("m2", "m3")
    a.send_packet("m1", b"x")
    b.send_packet("m0", b"x")
    c.send_packet("m0", b"x")
    clock.run_for(1.0)
    assert ra.packets == [] and rb.packets == []
    assert net.dropped["partition"] == 3

    net.heal()
    a.send_packet("m1", b"x")
    b.send_packet("m0", b"x")
    clock.run_for(1.0)
    assert len(ra.packets) == 1 and len(rb.packets) == 1


def test_partition_drops_packets_already_in_flight() -> None:
    clock, net, (a, _, _), (_, rb, _) = make_net(delay=FIXED)
    a.send_packet("m1", b"x")
    clock.run_for(0.005)
    net.partition([{"m0"}, {"m1", "m2"}])
    clock.run_for(1.0)
    assert rb.packets == [] and net.dropped["partition"] == 1


def test_partition_rejects_an_address_in_two_groups() -> None:
    _, net, _, _ = make_net()
    with pytest.raises(ValueError, match="more than one"):
        net.partition([{"m0", "m1"}, {"m1"}])


def test_partition_blocks_streams_until_healed() -> None:
    clock, net, (a, _, _), (_, rb, _) = make_net(delay=FIXED)
    replies = Replies(clock)
    net.partition([{"m0"}, {"m1"}])
    a.stream_request("m1", b"ping", 2.0, replies)
    clock.run_for(5.0)
    assert replies.got == [(2.0, None)]
    assert rb.requests == [] and net.stream_failures == 1

    net.heal()
    a.stream_request("m1", b"ping", 2.0, replies)
    clock.run_for(5.0)
    assert replies.got[-1] == (pytest.approx(5.0 + 0.03), b"re:ping")


# -- crashes ---------------------------------------------------------------------------------------------------


def test_crashed_member_neither_receives_sends_nor_fires_timers() -> None:
    clock, net, (a, b, _), (ra, rb, _) = make_net(delay=FIXED)
    fired: list[str] = []
    b.call_later(1.0, lambda: fired.append("b"))
    a.call_later(1.0, lambda: fired.append("a"))
    b.send_packet("m0", b"in flight")  # already on the wire: still arrives
    net.crash("m1")
    assert net.is_down("m1")
    a.send_packet("m1", b"x")
    b.send_packet("m0", b"after crash")
    clock.run_for(2.0)
    assert fired == ["a"]
    assert rb.packets == []
    assert [data for _, data, _ in ra.packets] == [b"in flight"]
    assert net.dropped["down"] == 2


def test_crash_drops_packets_in_flight_to_the_member() -> None:
    clock, net, (a, _, _), (_, rb, _) = make_net(delay=FIXED)
    a.send_packet("m1", b"x")
    net.crash("m1")
    clock.run_for(1.0)
    assert rb.packets == [] and net.dropped["down"] == 1


def test_stream_to_a_crashed_member_times_out_and_a_crashed_client_hears_nothing() -> None:
    clock, net, (a, b, c), (_, _, rc) = make_net(delay=FIXED)
    replies_a, replies_b = Replies(clock), Replies(clock)
    net.crash("m1")
    a.stream_request("m1", b"ping", 3.0, replies_a)
    c_replies = Replies(clock)
    c.stream_request("m0", b"ping", 3.0, c_replies)
    b.stream_request("m2", b"from the dead", 3.0, replies_b)
    clock.run_for(5.0)
    assert replies_a.got == [(3.0, None)]
    assert c_replies.got == [(pytest.approx(0.03), b"re:ping")]
    assert replies_b.got == [] and rc.requests == []


def test_client_crashing_mid_stream_gets_no_callback() -> None:
    clock, net, (a, _, _), (_, rb, _) = make_net(delay=FIXED)
    replies = Replies(clock)
    a.stream_request("m1", b"ping", 3.0, replies)
    clock.run_for(0.025)  # the server has answered; the reply is on its way
    net.crash("m0")
    clock.run_for(5.0)
    assert len(rb.requests) == 1 and replies.got == []


def test_attaching_a_crashed_address_again_starts_a_fresh_member() -> None:
    clock, net, (a, _, _), _ = make_net(delay=FIXED)
    net.crash("m1")
    with pytest.raises(ValueError, match="already attached"):
        net.attach("m0")
    fresh = Recorder(clock)
    net.attach("m1", fresh)
    a.send_packet("m1", b"hello again")
    clock.run_for(1.0)
    assert [data for _, data, _ in fresh.packets] == [b"hello again"]


# -- streams ---------------------------------------------------------------------------------------------------


def test_stream_reply_arrives_after_three_one_way_delays() -> None:
    clock, _, (a, _, _), (_, rb, _) = make_net(delay=FIXED)
    replies = Replies(clock)
    a.stream_request("m1", b"push-pull", 1.0, replies)
    assert replies.got == []  # never synchronous
    clock.run_for(0.0)
    assert replies.got == []
    clock.run_for(5.0)
    assert rb.requests == [(pytest.approx(0.02), b"push-pull", "m0")]
    assert replies.got == [(pytest.approx(0.03), b"re:push-pull")]


def test_stream_handler_returning_none_closes_with_none_and_slow_replies_time_out() -> None:
    clock, net, (a, _, _), (_, rb, _) = make_net(delay=FIXED)
    rb.answer = False
    replies = Replies(clock)
    a.stream_request("m1", b"q", 1.0, replies)
    clock.run_for(5.0)
    assert replies.got == [(pytest.approx(0.03), None)]

    rb.answer = True
    net.set_link_delay("m1", "m0", (2.0, 2.0))  # the reply leg alone outlasts the timeout
    a.stream_request("m1", b"q", 1.0, replies)
    clock.run_for(5.0)
    assert replies.got[-1] == (pytest.approx(6.0), None)
    assert len(replies.got) == 2  # the late reply is not delivered after the timeout


def test_stream_to_an_unknown_address_times_out() -> None:
    clock, _, (a, _, _), _ = make_net()
    replies = Replies(clock)
    a.stream_request("nobody", b"q", 0.5, replies)
    clock.run_for(1.0)
    assert replies.got == [(0.5, None)]


# -- timers ----------------------------------------------------------------------------------------------------


def test_member_timers_fire_on_virtual_time_and_cancel() -> None:
    clock, _, (a, _, _), _ = make_net()
    fired: list[tuple[str, float]] = []
    a.call_later(0.5, lambda: fired.append(("kept", a.now())))
    a.call_later(0.2, lambda: fired.append(("cancelled", a.now()))).cancel()
    clock.run_for(1.0)
    assert fired == [("kept", 0.5)]
    assert a.wall() == DEFAULT_EPOCH + 1.0


# -- accounting ------------------------------------------------------------------------------------------------


def test_counters_per_member_and_in_total() -> None:
    clock, net, (a, b, c), _ = make_net(delay=FIXED)
    a.send_packet("m1", b"x" * 100)
    a.send_packet("m2", b"x" * 50)
    b.send_packet("m0", b"x" * 10)
    net.crash("m2")
    c.send_packet("m0", b"never")  # a crashed member sends nothing
    a.stream_request("m1", b"r" * 30, 1.0, lambda _: None)
    clock.run_for(1.0)
    assert (a.packets_sent, a.bytes_sent) == (2, 150)
    assert (b.packets_received, b.bytes_received) == (1, 100)
    assert (c.packets_sent, c.packets_received) == (0, 0)
    assert (net.packets_sent, net.bytes_sent, net.packets_delivered) == (3, 160, 2)
    assert net.dropped["down"] == 2  # m0 -> m2 arrives after the crash; m2's own send
    # the request (30) and the reply ("re:" + 30)
    assert (a.stream_bytes_sent, a.stream_bytes_received) == (30, 33)
    assert (b.stream_bytes_sent, b.stream_bytes_received) == (33, 30)
    assert a.stream_bytes == b.stream_bytes == net.stream_bytes == 63
    assert net.streams == 1 and net.stream_failures == 0

    net.reset_counters()
    assert net.bytes_sent == net.packets_sent == net.stream_bytes == 0
    assert sum(net.dropped.values()) == 0
    assert a.bytes_sent == a.stream_bytes == b.bytes_received == 0


def test_invalid_settings_are_refused() -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError):
        SimNetwork(clock, 1, loss=1.5)
    with pytest.raises(ValueError):
        SimNetwork(clock, 1, delay=(0.2, 0.1))
    with pytest.raises(ValueError):
        SimNetwork(clock, 1, bandwidth=0)
    with pytest.raises(ValueError):
        clock.run_until_true(lambda: True, 1.0, check_every=0)


# -- determinism and speed -------------------------------------------------------------------------------------


def _scenario(seed: int) -> list[tuple[object, ...]]:
    """Gossip-like chatter with loss, random delays, streams, a partition and a crash; the trace of every arrival."""
    clock = VirtualClock()
    net = SimNetwork(clock, seed, loss=0.2, delay=(0.001, 0.02))
    trace: list[tuple[object, ...]] = []
    addrs = [f"m{i:02d}:7946" for i in range(20)]
    runtimes = [net.attach(addr, Recorder(clock, trace, addr)) for addr in addrs]

    for runtime in runtimes:

        def tick(rt: SimRuntime = runtime) -> None:
            peer = rt.rng.choice(addrs)
            rt.send_packet(peer, f"{rt.addr}@{clock.now:.6f}".encode())
            if rt.rng.random() < 0.1:
                rt.stream_request(peer, b"sync", 0.5, lambda reply, rt=rt: trace.append(("reply", rt.addr, reply)))
            rt.call_later(0.1, tick)

        runtime.call_later(runtime.rng.random() * 0.1, tick)

    clock.run_for(2.0)
    net.partition([set(addrs[:10])])
    clock.run_for(1.0)
    net.crash(addrs[3])
    net.heal()
    clock.run_for(2.0)
    trace.append(("totals", net.packets_sent, net.packets_delivered, tuple(sorted(net.dropped.items()))))
    return trace


def test_same_seed_same_run_and_another_seed_another_run() -> None:
    first, second = _scenario(42), _scenario(42)
    assert len(first) > 500
    assert first == second
    assert _scenario(43) != first


def test_a_thousand_members_exchange_a_hundred_thousand_packets_quickly() -> None:
    # 1,000 members each send 10 packets/s to random peers for 10 virtual seconds: 100k sends, 100k deliveries,
    # 100k timer events. About 0.3 s of CPU on the 2-core dev machine; the bound is loose for slower CI.
    clock = VirtualClock()
    net = SimNetwork(clock, seed=1)
    addrs = [f"m{i:04d}:7946" for i in range(1000)]
    counts = [0] * len(addrs)

    class Count:
        def __init__(self, i: int) -> None:
            self.i = i

        def on_packet(self, data: bytes, from_addr: str) -> None:
            counts[self.i] += 1

        def on_stream(self, data: bytes, from_addr: str) -> bytes | None:
            return None

    runtimes = [net.attach(addr, Count(i)) for i, addr in enumerate(addrs)]
    payload = b"x" * 200
    for runtime in runtimes:

        def tick(rt: SimRuntime = runtime) -> None:
            rt.send_packet(addrs[rt.rng.randrange(1000)], payload)
            rt.call_later(0.1, tick)

        runtime.call_later(runtime.rng.random() * 0.1, tick)

    started = time.process_time()
    clock.run_until(10.0)
    cpu = time.process_time() - started
    print(f"\n100k-packet simulation: {cpu:.2f} s CPU, {clock.events_run} events")
    assert net.packets_sent == 100_000
    assert sum(counts) == net.packets_delivered >= 99_900  # a few sent in the last 2 ms are still in flight
    assert cpu < 2.0
