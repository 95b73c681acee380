"""Fleet-wide stick counters: each worker's ``CounterTable`` views kept in step with Redis,
off the request path.

HAProxy counts per process, and its peers protocol copies entries between processes without
adding them up; here every worker of every host adds its counts to one entry in Redis.

Rules:
1. No request waits for Redis: ``track-sc*`` rules and the ``sc_*``/``src_*``/``table_*``
   fetches work on the worker's local view (``geoproxy.counters.table``), which reads the
   fleet's values as of its last sync plus its own counts since.
2. Every ``SYNC_PERIOD`` a worker with something to send makes one ``counters_sync.lua``
   call per table that changed (at most ``BATCH`` entries each): its increments, tag writes
   and gauge shares go in, the fleet's values of those entries come back. So a worker's view
   of an entry lags the fleet by at most one sync period plus a round trip, and a limit such
   as ``sc_http_req_rate(0) gt 100`` lets through at most what the other workers admitted in
   that lag beyond the limit (the README's precision section says it in numbers).
3. A sync that fails keeps its changes for the next one (``CounterTable.restore``); while
   Redis is away, workers count locally and log it once (``Outage``). A sync Redis ran but
   whose answer was lost (a stall) is sent again: counts may then be added twice, never
   lost; gauges are absolute, so they are not.
4. The loop has one owner (the fleet state), one stop event, and is restarted on a crash.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis

from geoproxy.counters.registry import CounterTables
from geoproxy.counters.table import USE_STALE_MS, CounterTable, EntryReply, SyncRecord
from geoproxy.state.connect import REDIS_ERRORS, Client
from geoproxy.state.fastpath import FastCaller
from geoproxy.state.keys import counter_index, counter_key, stick_key
from geoproxy.state.outage import RETRY_AFTER, Outage
from geoproxy.state.scripts import script_sha, script_text

SYNC_PERIOD = 0.05  # seconds between two syncs of a worker that counted something
BATCH = 512  # entries per call at most
SCRIPT = "counters_sync"

log = logging.getLogger("geoproxy.state")


class CounterSync:
    """The sync of one worker's stick counters (see the module rules)."""

    def __init__(self, client: Client, fast: FastCaller | None, tables: CounterTables,
                 worker_id: str, outage: Outage) -> None:
        self._client = client
        self._fast = fast
        self.tables = tables
        self._worker = worker_id
        self._outage = outage
        self._sha = script_sha(SCRIPT)
        self._fixed = {table.name: _fixed_arguments(table) for table in tables}

    def loop(self, stop: threading.Event) -> None:
        """Sync every ``SYNC_PERIOD`` until ``stop`` (rule 2); after a failure, wait out the
        outage (rule 3)."""
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
        """Send every table's changes now, one call per table and batch."""
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
        keys = [counter_index(table.name)]
        keys += [counter_key(table.name, record.entry.key) for record in records]
        args: list[Any] = [self._worker, *self._fixed[table.name]]
        for record in records:
            ops: list[Any] = []
            if record.write:
                for name, amount in record.adds.items():
                    ops += ("+" + name, amount)
                for name, value in record.sets.items():
                    ops += ("=" + name, value)
                if record.use is not None:
                    ops += ("u", record.use)
            args += ("w" if record.write else "r", record.entry.key, len(ops) // 2, *ops)
        reply = self._call(keys, args)
        now, used, entries = int(reply[0]), int(reply[1]), reply[2]
        self.tables.learn_time(now)
        table.settle(records, [_entry_reply(item) for item in entries], used)
        self._outage.answered()

    def _call(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return self._evalsha(keys, args)
        except redis.exceptions.NoScriptError:
            self._client.script_load(script_text(SCRIPT))
            return self._evalsha(keys, args)

    def _evalsha(self, keys: list[str], args: list[Any]) -> Any:
        if self._fast is not None:
            return self._fast.evalsha(self._sha, keys, args)
        return self._client.evalsha(self._sha, len(keys), *keys, *args)


def _fixed_arguments(table: CounterTable) -> list[Any]:
    """ARGV[2..8] of a table's calls (the script's header)."""
    periods = ",".join(f"{name}={period}" for name, period in table.spec.rates.items())
    entry_prefix = counter_key(table.name, "")
    return [table.expire_ms, table.size, "1" if table.nopurge else "0", USE_STALE_MS,
            entry_prefix, stick_key(table.name, ""), periods]


def _entry_reply(item: list[Any]) -> EntryReply:
    status, use, seen, server = int(item[0]), int(item[1]), int(item[2]), item[3]
    fields = {str(item[i]): str(item[i + 1]) for i in range(4, len(item) - 1, 2)}
    return EntryReply(status, fields, use, seen, server or None)
