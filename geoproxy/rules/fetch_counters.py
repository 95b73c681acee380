"""The stick-counter fetches (manual 7.3.3): ``sc_*(CTR[,TABLE])``, ``sc0_*``..``sc2_*([TABLE])``,
``src_*([TABLE])``, ``table_cnt``/``table_avl([TABLE])``, with HAProxy 2.6's meaning (pure).

Rules:
1. ``scN_M`` and ``sc_M(N)`` read counter set N that a ``track-sc*`` rule of this request
   started (``Txn.stick``), else the one its connection's ``tcp-request connection`` rules
   started (``SESSION_STICK``): no sample when nothing is tracked there, or when the table
   does not store what is asked; with a TABLE, the same key is looked up in that table (0 when
   it is not there). ``sc_tracked`` is a boolean, never missing.
2. ``src_M`` looks the client's address up in TABLE (default: the table of the proxy whose
   rule this is): 0 when it is not in the table, no sample when the table does not store it.
   ``src_inc_*``, ``src_clr_*`` and ``src_updt_conn_cnt`` create the entry, as HAProxy does.
3. Values are what this worker knows: the fleet's as of the last sync, plus this worker's own
   counts since (``geoproxy.counters.table``).
4. The ``gpc(IDX)``/``gpt(IDX)`` forms read array tables only (``store gpc(N)``); ``gpc0``
   and ``gpc1`` read either form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from geoproxy.counters.entry import Entry
from geoproxy.counters.table import CounterTable
from geoproxy.rules.calls import arg_int
from geoproxy.rules.fetch_types import Args, CompileEnv, Fetch, FetchDef
from geoproxy.rules.txn import SESSION_STICK, Txn

Metric = Callable[[CounterTable, Entry], object]
STICK_COUNTERS: Final = 3  # HAProxy's MAX_SESS_STKCTR: track-sc0, track-sc1, track-sc2


def _field(name: str) -> Metric:
    return lambda table, entry: table.value(entry, name)


def _kbytes(name: str) -> Metric:
    def kbytes(table: CounterTable, entry: Entry) -> object:
        value = table.value(entry, name)
        return None if value is None else value >> 10

    return kbytes


def _inc(index: int) -> Metric:
    return lambda table, entry: table.inc_gpc(entry, index)


def _clr(index: int) -> Metric:
    return lambda table, entry: table.clear_gpc(entry, index)


# read-only metrics: 0 for a key not in the table (rule 2)
READS: Final[dict[str, Metric]] = {
    **{name: _field(name) for name in (
        "bytes_in_rate", "bytes_out_rate", "conn_cnt", "conn_cur", "conn_rate", "gpc0_rate",
        "gpc1_rate", "http_err_cnt", "http_err_rate", "http_fail_cnt", "http_fail_rate",
        "http_req_cnt", "http_req_rate", "sess_cnt", "sess_rate")},
    "get_gpc0": _field("gpc0"),
    "get_gpc1": _field("gpc1"),
    "get_gpt0": _field("gpt0"),
    "kbytes_in": _kbytes("bytes_in_cnt"),
    "kbytes_out": _kbytes("bytes_out_cnt"),
}
# metrics that change the entry (``src_*`` forms create it)
WRITES: Final[dict[str, Metric]] = {
    "inc_gpc0": _inc(0), "inc_gpc1": _inc(1), "clr_gpc0": _clr(0), "clr_gpc1": _clr(1),
}


def _array(kind: str) -> Callable[[int], Metric]:
    """The array forms (rule 4), by index."""
    def made(index: int) -> Metric:
        def metric(table: CounterTable, entry: Entry) -> object:
            spec = table.spec
            if not (spec.gpt_array if kind == "get_gpt" else spec.gpc_array):
                return None
            if kind == "inc_gpc":
                return table.inc_gpc(entry, index)
            if kind == "clr_gpc":
                return table.clear_gpc(entry, index)
            name = {"get_gpc": f"gpc{index}", "get_gpt": f"gpt{index}",
                    "gpc_rate": f"gpc{index}_rate"}[kind]
            return table.value(entry, name)

        return metric

    return made


ARRAYS: Final = ("get_gpc", "get_gpt", "gpc_rate", "inc_gpc", "clr_gpc")
_ARRAY_WRITES: Final = ("inc_gpc", "clr_gpc")


def table_named(env: CompileEnv, name: str | None) -> CounterTable | None:
    """Table ``name``, or the current proxy's when None (validated at load time)."""
    if env.counters is None:
        return None
    return env.counters.get(name or env.proxy)


# -- sc_* (rule 1) ---------------------------------------------------------------------------


def _tracked(slot: int, table: CounterTable | None, txn: Txn) -> tuple[CounterTable,
                                                                     Entry | None] | None:
    """Counter set ``slot`` of the request, moved to ``table`` when one is named."""
    if slot >= STICK_COUNTERS:
        return None
    stick = txn.stick
    tracked = stick[slot] if stick is not None else None
    if tracked is None:  # the request's own, else its connection's (HAProxy's order)
        session = txn.environ.get(SESSION_STICK)
        tracked = session[slot] if session is not None else None
        if tracked is None:
            return None
    if table is None:
        return tracked
    return table, table.lookup(tracked[1].key)


MetricOf = Callable[[int], Metric]  # a metric by array index (non-array ones ignore it)


def _plain(metric: Metric) -> MetricOf:
    return lambda index: metric


def _sc(metric_of: MetricOf, slot_arg: int | None, array: bool) -> Callable[[Args, CompileEnv],
                                                                          Fetch]:
    """``sc_M([IDX,]CTR[,TABLE])`` (``slot_arg`` None) or ``scN_M([TABLE])``."""
    def made(args: Args, env: CompileEnv) -> Fetch:
        rest = list(args)
        index = arg_int(rest.pop(0)) if array else 0
        slot = arg_int(rest.pop(0)) if slot_arg is None else slot_arg
        table = table_named(env, str(rest[0])) if rest and rest[0] else None
        chosen = metric_of(index)

        def fetch(txn: Txn) -> object:
            found = _tracked(slot, table, txn)
            if found is None:
                return None
            where, entry = found
            return 0 if entry is None else chosen(where, entry)

        return fetch

    return made


def _sc_tracked(slot_arg: int | None) -> Callable[[Args, CompileEnv], Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        slot = arg_int(args[0]) if slot_arg is None else slot_arg
        return lambda txn: _tracked(slot, None, txn) is not None

    return made


def _sc_trackers(slot_arg: int | None) -> Callable[[Args, CompileEnv], Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        rest = list(args)
        slot = arg_int(rest.pop(0)) if slot_arg is None else slot_arg
        table = table_named(env, str(rest[0])) if rest and rest[0] else None

        def fetch(txn: Txn) -> object:
            found = _tracked(slot, table, txn)
            if found is None:
                return None
            where, entry = found
            return 0 if entry is None else where.trackers(entry)

        return fetch

    return made


# -- src_* (rule 2) --------------------------------------------------------------------------


def _client_key(table: CounterTable, txn: Txn) -> str | None:
    return table.key_of(txn.environ.get("REMOTE_ADDR", ""))


def _src(metric_of: MetricOf, creates: bool, array: bool) -> Callable[[Args, CompileEnv],
                                                                       Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        rest = list(args)
        index = arg_int(rest.pop(0)) if array else 0
        table = table_named(env, str(rest[0]) if rest and rest[0] else None)
        chosen = metric_of(index)
        if table is None:
            return lambda txn: None

        def fetch(txn: Txn) -> object:
            key = _client_key(table, txn)
            if key is None:
                return None
            entry = table.entry(key) if creates else table.lookup(key)
            return 0 if entry is None else chosen(table, entry)

        return fetch

    return made


def _updt_conn_cnt(args: Args, env: CompileEnv) -> Fetch:
    """``src_updt_conn_cnt``: create or refresh the client's entry and count a connection."""
    table = table_named(env, str(args[0]) if args and args[0] else None)
    if table is None or "conn_cnt" not in table.spec.counts:
        return lambda txn: None
    counted = table

    def fetch(txn: Txn) -> object:
        key = _client_key(counted, txn)
        if key is None:
            return None
        entry = counted.entry(key)
        counted.count(entry, "conn", 1)
        return counted.value(entry, "conn_cnt")

    return fetch


def _table_size(used: bool) -> Callable[[Args, CompileEnv], Fetch]:
    def made(args: Args, env: CompileEnv) -> Fetch:
        table = table_named(env, str(args[0]) if args and args[0] else None)
        if table is None:
            return lambda txn: None
        if used:
            return lambda txn: table.used()
        return lambda txn: max(table.size - table.used(), 0)

    return made


def _build() -> dict[str, FetchDef]:
    table: dict[str, FetchDef] = {}
    prefixes = ("sc0_", "sc1_", "sc2_")
    for name, metric in {**READS, **WRITES}.items():
        plain = _plain(metric)
        table[f"sc_{name}"] = FetchDef("i|s", "int", _sc(plain, None, False), needs="any")
        for slot, prefix in enumerate(prefixes):
            table[prefix + name] = FetchDef("|s", "int", _sc(plain, slot, False), needs="any")
        table[f"src_{name}"] = FetchDef("|s", "int", _src(plain, name in WRITES, False),
                                        needs="any")
    for kind in ARRAYS:
        by_index = _array(kind)
        table[f"sc_{kind}"] = FetchDef("ii|s", "int", _sc(by_index, None, True), needs="any")
        table[f"src_{kind}"] = FetchDef("i|s", "int", _src(by_index, kind in _ARRAY_WRITES,
                                                            True), needs="any")
    table["sc_tracked"] = FetchDef("i|s", "bool", _sc_tracked(None), needs="any")
    table["sc_trackers"] = FetchDef("i|s", "int", _sc_trackers(None), needs="any")
    for slot, prefix in enumerate(prefixes):
        table[f"{prefix}tracked"] = FetchDef("|s", "bool", _sc_tracked(slot), needs="any")
        table[f"{prefix}trackers"] = FetchDef("|s", "int", _sc_trackers(slot), needs="any")
    table["src_updt_conn_cnt"] = FetchDef("|s", "int", _updt_conn_cnt, needs="any")
    table["table_cnt"] = FetchDef("|s", "int", _table_size(True), needs="any")
    table["table_avl"] = FetchDef("|s", "int", _table_size(False), needs="any")
    return table


COUNTER_FETCHES: Final[dict[str, FetchDef]] = _build()


def table_arguments(name: str, args: Args) -> tuple[str | None, ...]:
    """The tables a counter fetch names (None: the current proxy's), for the load-time
    check; () when it names none (the ``sc`` forms without TABLE read the tracked one)."""
    if name not in COUNTER_FETCHES:
        return ()
    rest = list(args)
    kind = name.partition("_")[2]
    if name.startswith("sc_"):
        rest = rest[2:] if kind in ARRAYS else rest[1:]
    elif name.startswith("src_") and kind in ARRAYS:
        rest = rest[1:]
    named = str(rest[0]) if rest and rest[0] else None
    if name.startswith(("sc_", "sc0_", "sc1_", "sc2_")):
        return (named,) if named else ()
    return (named,)
