"""The stick-table converters (manual 7.3.1): ``in_table(T)`` and ``table_*(T)``, with HAProxy
2.6's meaning (pure).

The input sample, converted to the table's key type, is looked up in table T (default: the
table of the proxy whose rule this is). ``in_table`` says whether it is there. The others
answer 0 for a key not in the table, no sample when the table does not store what they read
(``table_expire`` and ``table_idle``: no sample, or their default, for a key not there).
``table_server_id`` reads the persistence entry (``stick on``...) of the key: its server's
id, the server's position in its backend (1 for the first). A lookup never refreshes an
entry's expiry, as HAProxy's converters do not. Values are this worker's view
(``geoproxy.counters.table``): a key another worker added shows up after this worker's next
sync.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from geoproxy.counters.entry import Entry
from geoproxy.counters.table import CounterTable
from geoproxy.rules.calls import arg_int
from geoproxy.rules.fetch_counters import READS, Metric, table_named
from geoproxy.rules.fetch_types import Args, CompileEnv
from geoproxy.rules.txn import Txn

Convert = Callable[[object, Txn], object]
MakeEnv = Callable[[Args, CompileEnv], Convert]


def _table(args: Args, env: CompileEnv, position: int = 0) -> CounterTable | None:
    name = str(args[position]) if len(args) > position and args[position] else None
    return table_named(env, name)


def _lookup(metric: Metric, position: int = 0) -> MakeEnv:
    def made(args: Args, env: CompileEnv) -> Convert:
        table = _table(args, env, position)
        if table is None:
            return lambda value, txn: None

        def convert(value: object, txn: Txn) -> object:
            key = table.key_of(value)
            if key is None:
                return None
            entry = table.lookup(key)
            return 0 if entry is None else metric(table, entry)

        return convert

    return made


def _indexed(prefix: str, suffix: str, array: str) -> MakeEnv:
    """``table_gpc(IDX,T)``, ``table_gpc_rate(IDX,T)``, ``table_gpt(IDX,T)``: array tables."""
    def made(args: Args, env: CompileEnv) -> Convert:
        name = f"{prefix}{arg_int(args[0])}{suffix}"

        def metric(table: CounterTable, entry: Entry) -> object:
            if not getattr(table.spec, array):
                return 0
            return table.value(entry, name)

        return _lookup(metric, 1)(args, env)

    return made


def _in_table(args: Args, env: CompileEnv) -> Convert:
    table = _table(args, env)
    if table is None:
        return lambda value, txn: False

    def convert(value: object, txn: Txn) -> object:
        key = table.key_of(value)
        if key is None:
            return False
        entry = table.lookup(key)
        return entry is not None or table.entry(key).server is not None

    return convert


def _timer(idle: bool) -> MakeEnv:
    """``table_idle(T[,DEFAULT])``: milliseconds since the entry was last updated;
    ``table_expire(T[,DEFAULT])``: milliseconds before it expires."""
    def made(args: Args, env: CompileEnv) -> Convert:
        table = _table(args, env)
        default = arg_int(args[1]) if len(args) > 1 else None
        if table is None:
            return lambda value, txn: default

        def convert(value: object, txn: Txn) -> object:
            key = table.key_of(value)
            entry = None if key is None else table.lookup(key)
            if entry is None:
                return default
            now = table.clock()
            last = entry.used_at if entry.written or not entry.seen else entry.seen
            since = max(now - last, 0)
            if idle:
                return since
            return max(table.expire_ms - since, 0) if table.expire_ms else 0

        return convert

    return made


def _server_id(args: Args, env: CompileEnv) -> Convert:
    table = _table(args, env)
    counters = env.counters
    if table is None or counters is None:
        return lambda value, txn: None
    ids = counters.server_ids.get(table.name, {})

    def convert(value: object, txn: Txn) -> object:
        key = table.key_of(value)
        if key is None:
            return None
        server = table.entry(key).server
        table.lookup(key)  # ask the fleet at the next sync
        return ids.get(server, 0) if server is not None else 0

    return convert


def _trackers(table: CounterTable, entry: Entry) -> object:
    return table.trackers(entry)


def _build() -> dict[str, tuple[str, str, MakeEnv]]:
    table: dict[str, tuple[str, str, MakeEnv]] = {
        "in_table": ("|s", "bool", _in_table),
        "table_gpc": ("i|s", "int", _indexed("gpc", "", "gpc_array")),
        "table_gpc_rate": ("i|s", "int", _indexed("gpc", "_rate", "gpc_array")),
        "table_gpt": ("i|s", "int", _indexed("gpt", "", "gpt_array")),
        "table_expire": ("|si", "int", _timer(idle=False)),
        "table_idle": ("|si", "int", _timer(idle=True)),
        "table_server_id": ("|s", "int", _server_id),
        "table_trackers": ("|s", "int", _lookup(_trackers)),
    }
    names = {"get_gpc0": "gpc0", "get_gpc1": "gpc1", "get_gpt0": "gpt0"}
    for read, metric in READS.items():
        table[f"table_{names.get(read, read)}"] = ("|s", "int", _lookup(metric))
    return table


# name -> (signature, output type, maker with the configuration)
COUNTER_CONVERTERS: Final = _build()


def converter_tables(name: str, args: tuple[object, ...]) -> tuple[tuple[int, str | None], ...]:
    """(1-based argument position, table name or None for the current proxy's) of the table a
    stick-table converter reads, for the load-time check; () for other converters."""
    if name not in COUNTER_CONVERTERS:
        return ()
    position = 1 if name in ("table_gpc", "table_gpc_rate", "table_gpt") else 0
    named = str(args[position]) if len(args) > position and args[position] else None
    return ((position + 1, named),)
