"""OvsdbConnection: two connections in one process stay apart, changes reach listeners on the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dpfd.dpu.ovs.connection import OvsdbConnection, OvsdbError, RowChange
from tests.ovs_fixture import PrivateOvs, missing_ovs
from tests.waiting import eventually


async def test_two_connections_see_their_own_database(ovs: PrivateOvs) -> None:
    if why := missing_ovs():
        pytest.skip(why)
    ovs.add_bridge("br-a")
    with PrivateOvs() as other:
        other.add_bridge("br-b")
        a, b = OvsdbConnection(ovs.db), OvsdbConnection(other.db)
        await a.start()
        await b.start()
        try:
            names_a = await a.read(lambda t: sorted(r.name for r in t["Bridge"].rows.values()))
            names_b = await b.read(lambda t: sorted(r.name for r in t["Bridge"].rows.values()))
            assert (names_a, names_b) == (["br-a"], ["br-b"])
            assert a.api.ovsdb_connection is not b.api.ovsdb_connection
        finally:
            await a.stop()
            await b.stop()


async def test_listeners_run_on_the_event_loop(ovs: PrivateOvs) -> None:
    conn = OvsdbConnection(ovs.db)
    await conn.start()
    seen: list[tuple[RowChange, bool]] = []
    unlisten = conn.listen("Bridge", ("name",), lambda ch: seen.append((ch, threading.current_thread() is main)))
    main = threading.current_thread()
    try:
        await asyncio.to_thread(ovs.add_bridge, "br-x")
        await eventually(lambda: any(c.event == "create" and c.row["name"] == "br-x" for c, _ in seen), 5, "create")
        assert all(on_loop for _, on_loop in seen)
        unlisten()
        await asyncio.to_thread(ovs.add_bridge, "br-y")
        assert "br-y" in await conn.read(lambda t: [r.name for r in t["Bridge"].rows.values()])
        await asyncio.sleep(0)  # let anything already handed to the loop run (not a wait for a condition)
        assert not [c for c, _ in seen if c.row.get("name") == "br-y"]
    finally:
        await conn.stop()


async def test_unreachable_database_is_a_clear_error(ovs: PrivateOvs) -> None:
    conn = OvsdbConnection(f"unix:{ovs.rundir}/nothing.sock", timeout=1)
    with pytest.raises(OvsdbError, match=r"nothing\.sock: cannot read the Open_vSwitch schema"):
        await conn.start()
