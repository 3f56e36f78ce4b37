from dpfd.gossip.broadcast import Broadcast, BroadcastQueue
from dpfd.gossip.lifeguard import retransmit_limit


def bc(key: str, size: int = 10, done: list[str] | None = None) -> Broadcast:
    on_done = (lambda: done.append(key)) if done is not None else None
    return Broadcast(key=key, message=key.encode(), size=size, on_done=on_done)


def test_each_broadcast_is_sent_its_retransmit_limit_then_dropped() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    done: list[str] = []
    q.queue(bc("a", done=done))
    limit = retransmit_limit(4, 10)  # 4 * ceil(log10(11)) = 8
    sent = 0
    while q.get(overhead=0, limit=1400, n_members=10):
        sent += 1
    assert sent == limit == 8
    assert done == ["a"] and len(q) == 0


def test_least_sent_first_then_newest() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    q.queue(bc("old"))
    assert q.get(0, 10, 10) == [b"old"]  # one transmit
    q.queue(bc("new1"))
    q.queue(bc("new2"))
    # one fits per call: the never-sent first, newest first; then among the once-sent, newest first again
    assert [q.get(0, 10, 10)[0] for _ in range(5)] == [b"new2", b"new1", b"new2", b"new1", b"old"]


def test_newer_update_about_a_member_replaces_the_older() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    done: list[str] = []
    q.queue(bc("a", done=done))
    q.queue(Broadcast(key="a", message=b"a-v2", size=10))
    assert done == ["a"]  # the replaced one is finished
    assert q.get(0, 1400, 10) == [b"a-v2"] and len(q) == 1


def test_packs_what_fits_and_skips_what_does_not() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    q.queue(bc("small1", 100))
    q.queue(bc("big", 900))
    q.queue(bc("small2", 100))
    # 2 bytes of overhead each: 102 + 902 fits in 1100, the second small does not
    got = q.get(overhead=2, limit=1100, n_members=10)
    assert got == [b"small2", b"big"]
    assert q.get(overhead=2, limit=1100, n_members=10)[0] == b"small1"  # never sent, so first now


def test_prune_keeps_the_newest() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    done: list[str] = []
    for k in "abcde":
        q.queue(bc(k, done=done))
    q.prune(2)
    assert done == ["a", "b", "c"]
    assert sorted(q.get(0, 1400, 10)) == [b"d", b"e"]  # type: ignore[type-var]
