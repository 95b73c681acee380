"""Every stick table of a configuration, as one worker's ``CounterTable`` values (pure), and
the clock they share: the Redis server's, as this worker estimates it (its own wall clock,
corrected by what each sync's answer says the server's time is)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from geoproxy.config.model import Config, StickTable
from geoproxy.counters.datatypes import StoreSpec
from geoproxy.counters.table import CounterTable
from geoproxy.counters.tablekey import key_converter


class CounterTables:
    """The tables of one worker, by name (a table is named after the proxy declaring it)."""

    def __init__(self, tables: dict[str, StickTable],
                 wall: Callable[[], float] = time.time,
                 server_ids: dict[str, dict[str, int]] | None = None) -> None:
        self._wall = wall
        self.offset_ms = 0
        # table -> server name -> HAProxy's server id (its position in its backend, from 1)
        self.server_ids = server_ids or {}
        self.tables: dict[str, CounterTable] = {
            name: CounterTable(
                name,
                StoreSpec.of(table.store),
                size=table.size,
                expire_ms=int(table.expire * 1000) if table.expire else 0,
                nopurge=table.nopurge,
                key_of=key_converter(table.type.value, table.length),
                clock=self.now,
            )
            for name, table in tables.items()
        }

    @classmethod
    def of(cls, config: Config, wall: Callable[[], float] = time.time) -> CounterTables:
        ids = {backend.name: {server.name: index + 1
                              for index, server in enumerate(backend.servers)}
               for backend in config.backends if backend.stick_table is not None}
        return cls(stick_tables(config), wall, ids)

    def now(self) -> int:
        """Milliseconds on the Redis server's clock, as this worker estimates it."""
        return int(self._wall() * 1000.0) + self.offset_ms

    def learn_time(self, server_ms: int) -> None:
        """A sync answered at ``server_ms``: correct the estimate (half the difference at a
        time, so that one slow answer moves it little)."""
        error = server_ms - self.now()
        self.offset_ms += error // 2 if abs(error) < 1000 else error

    def get(self, name: str) -> CounterTable | None:
        return self.tables.get(name)

    def __iter__(self) -> Iterator[CounterTable]:
        return iter(self.tables.values())


def stick_tables(config: Config) -> dict[str, StickTable]:
    """Every ``stick-table`` of ``config`` by name: its proxy's (a ``listen`` section's two
    halves share one)."""
    found: dict[str, StickTable] = {}
    for frontend in config.frontends:
        if frontend.stick_table is not None:
            found[frontend.name] = frontend.stick_table
    for backend in config.backends:
        if backend.stick_table is not None:
            found.setdefault(backend.name, backend.stick_table)
    return found
