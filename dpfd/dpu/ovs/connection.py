"""One ovsdbapp connection to the Open_vSwitch database, usable from asyncio.

ovsdbapp runs the OVS IDL in its own thread. Everything here that touches the IDL (start, transactions, reads)
runs in a worker thread (`asyncio.to_thread`), so the event loop never blocks on OVSDB. Row changes are handed to
listeners on the event loop (`listen`), as plain snapshots of the columns asked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ovsdbapp import exceptions as ovs_exceptions
from ovsdbapp.backend.ovs_idl import command as ovs_command
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import idlutils, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

log = logging.getLogger(__name__)
T = TypeVar("T")


class OvsdbError(Exception):
    """OVSDB cannot be reached or refused a transaction; the message says which database and why."""


@dataclass(frozen=True)
class RowChange:
    """A row of `table` was created, updated or deleted; `row` and `old` hold the listened-for columns."""

    table: str
    event: str  # "create" | "update" | "delete"
    row: dict[str, Any]
    old: dict[str, Any] | None  # for "update": the changed columns' previous values


Listener = Callable[[RowChange], None]


class _Idl(ovs_connection.OvsdbIdl):  # type: ignore[misc]
    """The IDL with a notify hook (called in the IDL thread)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hooks: list[Callable[[str, Any, Any], None]] = []

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        for hook in list(self.hooks):
            hook(event, row, updates)


class _Txn(transaction.Transaction):  # type: ignore[misc]
    """A plain transaction: unlike ovs-vsctl's, commit does not block until ovs-vswitchd applied it (when it is
    down that would stall every caller); commands that need it bump next_cfg and callers await `wait_applied`."""


class _Api(impl_idl.OvsdbIdl):  # type: ignore[misc]
    def create_transaction(self, check_error: bool = False, log_errors: bool = True, **kwargs: Any) -> _Txn:
        return _Txn(self, self.ovsdb_connection, check_error=check_error, log_errors=log_errors)


def snapshot(row: Any, columns: Iterable[str]) -> dict[str, Any]:
    """Plain copies of `columns` of an IDL row (rows change under the IDL thread; copies do not)."""
    out: dict[str, Any] = {"_uuid": str(row.uuid)}
    for col in columns:
        try:
            value = getattr(row, col)
        except AttributeError:  # not in an update's old values
            continue
        if isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, list):
            value = [str(v.uuid) if hasattr(v, "uuid") else v for v in value]
        out[col] = value
    return out


class OvsdbConnection:
    """An Open_vSwitch database connection (`unix:/var/run/openvswitch/db.sock` on a DPU)."""

    def __init__(self, remote: str, timeout: float = 10.0) -> None:
        self.remote = remote
        self.timeout = timeout
        self._conn: ovs_connection.Connection | None = None
        self._api: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: dict[str, list[tuple[tuple[str, ...], Listener]]] = {}

    @property
    def api(self) -> Any:
        """The ovsdbapp Open_vSwitch API (its commands are run with `execute`)."""
        if self._api is None:
            raise OvsdbError(f"OVSDB {self.remote}: not connected (start() first)")
        return self._api

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        try:
            helper = idlutils.get_schema_helper(self.remote, "Open_vSwitch")
        except Exception as e:
            raise OvsdbError(f"OVSDB {self.remote}: cannot read the Open_vSwitch schema: {e}") from None
        helper.register_all()
        idl = _Idl(self.remote, helper)
        idl.hooks.append(self._on_row)
        conn = ovs_connection.Connection(idl, timeout=self.timeout)
        try:
            conn.start()
        except Exception as e:
            raise OvsdbError(f"OVSDB {self.remote}: cannot connect: {e}") from None
        # ovsdbapp keeps the connection in a class attribute: a class per connection keeps two apart.
        api_cls = type("DpfOvsApi", (_Api,), {"_ovsdb_connection": None})
        self._conn = conn
        self._api = api_cls(conn, start=False)

    async def stop(self) -> None:
        conn, self._conn, self._api = self._conn, None, None
        if conn is not None:
            await asyncio.to_thread(conn.stop, self.timeout)

    # ------------------------------------------------------------------ transactions and reads

    async def execute(self, *commands: ovs_command.BaseCommand) -> list[Any]:
        """Run `commands` in ONE transaction; their results in order. Raises OvsdbError on failure."""
        api = self.api

        def run() -> list[Any]:
            txn = api.create_transaction(check_error=True, log_errors=False)
            for c in commands:
                txn.add(c)
            try:
                result = txn.commit()
            except (RuntimeError, ovs_exceptions.OvsdbAppException) as e:  # ovsdbapp's; commands' own pass through
                raise OvsdbError(f"OVSDB {self.remote}: transaction failed: {e}") from e
            return list(result or [])

        return await asyncio.to_thread(run)

    async def read(self, fn: Callable[[Any], T]) -> T:
        """`fn(tables)` with the IDL's tables (name -> table, `.rows` by uuid), under the IDL lock, in a thread.
        `fn` must copy what it returns (use `snapshot`)."""
        api, conn = self.api, self._conn
        assert conn is not None

        def run() -> T:
            with conn.lock:
                return fn(api.tables)

        return await asyncio.to_thread(run)

    def read_now(self, fn: Callable[[Any], T]) -> T | None:
        """`fn(tables)` on the IDL's replica right now, on this thread (a quick lookup, no round trip); None when
        not connected. `fn` must copy what it returns."""
        api, conn = self._api, self._conn
        if api is None or conn is None:
            return None
        with conn.lock:
            return fn(api.tables)

    async def cfg(self) -> tuple[int, int]:
        """(cur_cfg, next_cfg) of the Open_vSwitch row: ovs-vswitchd has applied everything when they are equal."""

        def get(tables: Any) -> tuple[int, int]:
            row = next(iter(tables["Open_vSwitch"].rows.values()))
            return int(row.cur_cfg), int(row.next_cfg)

        return await self.read(get)

    async def wait_applied(self, next_cfg: int, within: float) -> bool:
        """Wait until ovs-vswitchd has applied configuration `next_cfg` (cur_cfg >= it); False on timeout."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_change(change: RowChange) -> None:
            if int(change.row.get("cur_cfg", 0)) >= next_cfg and not done.done():
                done.set_result(None)

        unlisten = self.listen("Open_vSwitch", ("cur_cfg",), on_change)
        try:
            if (await self.cfg())[0] >= next_cfg:
                return True
            await asyncio.wait_for(done, within)
            return True
        except TimeoutError:
            return False
        finally:
            unlisten()

    # ------------------------------------------------------------------ change notifications

    def listen(self, table: str, columns: Iterable[str], listener: Listener) -> Callable[[], None]:
        """Call `listener(RowChange)` on the event loop for every change to `table`; returns an unsubscribe."""
        entry = (tuple(columns), listener)
        self._listeners.setdefault(table, []).append(entry)

        def unlisten() -> None:
            entries = self._listeners.get(table, [])
            if entry in entries:
                entries.remove(entry)

        return unlisten

    def _on_row(self, event: str, row: Any, updates: Any) -> None:  # IDL thread
        loop = self._loop
        entries = self._listeners.get(row._table.name)
        if loop is None or not entries or loop.is_closed():
            return
        for columns, listener in list(entries):
            change = RowChange(row._table.name, event, snapshot(row, columns),
                               snapshot(updates, columns) if updates is not None else None)  # fmt: skip
            loop.call_soon_threadsafe(_deliver, listener, change)


def _deliver(listener: Listener, change: RowChange) -> None:
    try:
        listener(change)
    except Exception:
        log.exception("OVSDB change listener failed on %s %s", change.event, change.table)
