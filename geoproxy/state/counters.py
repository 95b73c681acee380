"""Fleet-wide stick counters: each worker's ``CounterTable`` views kept in step with Redis,
off the request path.

HAProxy counts per process, and its peers protocol copies entries between processes without
adding them up; here every worker of every host adds its counts to one entry in Redis.

Rules:
1. No request waits for Redis: ``track-sc*`` rules and the ``sc_*``/``src_*``/``table_*``
   fetches work on the worker's local view (``geoproxy.counters.table``), which reads the
   fleet's values as of its last sync plus its own counts since.
2. Every ``SYNC_PERIOD`` a worker with something to send makes one round trip per table (at
   most ``BATCH`` entries each): plain commands in one MULTI/EXEC, no script. Everything a
   worker sends adds up whatever the other workers send meanwhile: counters and rate periods
   are HINCRBY (a rate keeps one field per period, ``name@start``: see ``counters/table.py``
   rule 2), tags are HSET, gauge shares are each worker's own field. Each entry is read back
   (HGETALL) in the same call, so the worker's view lags the fleet by at most one sync
   period plus a round trip for what it counts or reads often.
3. The table's index (``gp:{T}:sc-keys``, scored by last write) gives ``table_cnt``, and
   every call keeps only its ``size`` most recently written entries (the others leave the
   index in that call, and their hashes go in the worker's next one; ``nopurge``: the worker
   creates no entry in a full table instead). Entries, and the index, expire with the
   table's ``expire`` (PEXPIRE at every write).
4. A sync that fails keeps its changes for the next one (``CounterTable.restore``); while
   Redis is away, workers count locally and log it once (``Outage``). A sync Redis ran but
   whose answer was lost (a stall) is sent again: its increments may then count twice, never
   be lost; gauge shares are absolute, so they do not.
5. Times written (last write, gauge shares, index scores) are the worker's estimate of the
   Redis server's clock, corrected by the TIME that every ``HOUSEKEEPING``-th call reads
   (with the index's pruning of expired entries and the renewal of its expiry).
6. The loop has one owner (the fleet state) and one stop event, and is restarted on a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from geoproxy.counters.entry import EntryReply, SyncRecord
from geoproxy.counters.registry import CounterTables
from geoproxy.counters.table import CounterTable
from geoproxy.state.connect import REDIS_ERRORS, Client, is_cluster
from geoproxy.state.fastpath import FastCaller
from geoproxy.state.keys import counter_index, counter_key, stick_key
from geoproxy.state.outage import RETRY_AFTER, Outage

SYNC_PERIOD = 0.05  # seconds between two syncs of a worker that counted something
BATCH = 512  # entries per round trip at most
# every HOUSEKEEPING-th call of a table also reads the server's time, drops expired entries
# from the index and renews its expiry (about twice a second under traffic)
HOUSEKEEPING = 10

log = logging.getLogger("geoproxy.state")
Command = tuple[Any, ...]


class CounterSync:
    """The sync of one worker's stick counters (see the module rules)."""

    def __init__(self, client: Client, fast: FastCaller | None, tables: CounterTables,
                 worker_id: str, outage: Outage) -> None:
        self._client = client
        self._fast = fast
        self._cluster = is_cluster(client)
        self.tables = tables
        self._outage = outage
        self._use_field = f"use:{worker_id}"
        for table in tables:
            table.use_field = self._use_field
        # entries evicted from each table's index, whose hashes go at the next call
        self._doomed: dict[str, list[str]] = {table.name: [] for table in tables}
        self._calls: dict[str, int] = {table.name: 0 for table in tables}

    def loop(self, stop: threading.Event) -> None:
        """Sync every ``SYNC_PERIOD`` until ``stop``; after a failure, wait out the outage."""
        while not stop.is_set():
            # a plain sleep: no timer or lock to allocate twenty times a second
            time.sleep(SYNC_PERIOD)
            if not self._outage.may_call():
                continue
            try:
                self.sync()
            except REDIS_ERRORS as error:
                self._outage.failed(error)
                stop.wait(RETRY_AFTER)

    def sync(self) -> None:
        """Send every table's changes now: one round trip per table and batch."""
        for table in self.tables:
            while True:
                records = table.take(BATCH)
                if not records:
                    break
                try:
                    self._send(table, records)
                except BaseException:
                    table.restore(records)
                    raise
                if len(records) < BATCH:
                    break

    def _send(self, table: CounterTable, records: list[SyncRecord]) -> None:
        now = self.tables.now()
        calls = self._calls[table.name]
        self._calls[table.name] = calls + 1
        commands, reads, tail = self._commands(table, records, now, calls % HOUSEKEEPING == 0)
        replies = self._run(commands)
        if "time" in tail:
            seconds, micros = replies[tail["time"]]
            self.tables.learn_time(int(seconds) * 1000 + int(micros) // 1000)
        answers = []
        for hgetall, get in reads:
            server = replies[get] if get is not None else None
            answers.append(EntryReply(_fields(replies[hgetall]), server or None))
        if "evicted" in tail:
            self._doomed[table.name] = [str(member) for member in replies[tail["evicted"]]]
        table.settle(records, answers, int(replies[tail["used"]]))
        self._outage.answered()

    def _commands(self, table: CounterTable, records: Sequence[SyncRecord], now: int,
                  housekeeping: bool
                  ) -> tuple[list[Command], list[tuple[int, int | None]], dict[str, int]]:
        """The commands of one round trip (rule 2), where each entry's HGETALL (and a read's
        GET of the persistence entry) answers, and where the table's figures do."""
        name, expire = table.name, table.expire_ms
        commands: list[Command] = []
        tail: dict[str, int] = {}
        if housekeeping and not self._cluster:
            commands.append(("TIME",))
            tail["time"] = 0
        reads: list[tuple[int, int | None]] = []
        scores: list[Any] = []
        for record in records:
            key = counter_key(name, record.entry.key)
            if not record.write:
                commands.append(("HGETALL", key))
                if record.entry.exists:  # re-read: the persistence entry is not asked again
                    reads.append((len(commands) - 1, None))
                    continue
                commands.append(("GET", stick_key(name, record.entry.key)))
                reads.append((len(commands) - 2, len(commands) - 1))
                continue
            for field, amount in record.adds.items():
                commands.append(("HINCRBY", key, field, amount))
            values: list[Any] = ["t", now]
            for field, value in record.sets.items():
                values += (field, value)
            deletes = list(record.deletes)
            if record.use:
                values += (self._use_field, f"{record.use}@{now}")
            elif record.use == 0:
                deletes.append(self._use_field)
            commands.append(("HSET", key, *values))
            if record.anchor:
                commands.append(("HSETNX", key, "a", record.anchor))
            if deletes:
                commands.append(("HDEL", key, *deletes))
            if expire:
                commands.append(("PEXPIRE", key, expire))
            commands.append(("HGETALL", key))
            reads.append((len(commands) - 1, None))
            scores += (now, record.entry.key)
        index = counter_index(name)
        if scores:
            commands.append(("ZADD", index, *scores))
        if expire and housekeeping:
            commands.append(("ZREMRANGEBYSCORE", index, "-inf", now - expire))
            commands.append(("PEXPIRE", index, expire))
        doomed, self._doomed[name] = self._doomed[name], []
        if doomed:
            commands.append(("DEL", *(counter_key(name, member) for member in doomed)))
        if not table.nopurge and table.fleet_used + len(scores) // 2 > table.size:
            # keep the newest 'size' entries; the hashes of the others go next time
            commands.append(("ZRANGE", index, 0, -table.size - 1))
            tail["evicted"] = len(commands) - 1
            commands.append(("ZREMRANGEBYRANK", index, 0, -table.size - 1))
        commands.append(("ZCARD", index))
        tail["used"] = len(commands) - 1
        return commands, reads, tail

    def _run(self, commands: list[Command]) -> list[Any]:
        if self._fast is not None:
            return self._fast.transaction(commands)
        pipe: Any = self._client.pipeline(transaction=not self._cluster)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute())


def _fields(reply: Any) -> dict[str, str]:
    """An HGETALL answer (a flat list on the raw path, a dict from redis-py) as text."""
    if isinstance(reply, dict):
        return {str(name): str(value) for name, value in reply.items()}
    return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}

