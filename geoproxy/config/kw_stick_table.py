"""``stick-table type ip|ipv6|integer|string [len N]|binary [len N] size N [expire T]
[nopurge] [store D[,D]...]...`` in a frontend, backend or listen section (manual 4.2).

One table per proxy, named after it: persistence (``stick on``...) keeps the server of each
entry, and the ``store`` data types are the stick counters of ``track-sc*`` rules and the
``sc_*``/``src_*``/``table_*`` fetches (``geoproxy.counters``). ``peers`` is accepted with a
warning (every process already shares the table through Redis). Messages are HAProxy 2.6's.
"""

from __future__ import annotations

from geoproxy.config.context import Line, quoted_list
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import StickTable, StickTableType
from geoproxy.config.units import UnitError, parse_size, parse_time
from geoproxy.counters.datatypes import StoreError, StoreItem, check_combination, parse_store


def parse_stick_table(proxy: ProxyDraft, line: Line) -> None:
    existing = proxy.rules.stick_table
    if existing is not None:
        line.fail(f"stick-table name '{proxy.name}' conflicts with table declared in "
                  f"{proxy.label} at {existing.location}.")
    proxy.rules.stick_table = _stick_table(line)


def _stick_table(line: Line) -> StickTable:
    types = {t.value: t for t in StickTableType}
    if line.arg(0) != "type" or line.arg(1) not in types:
        line.fail(f"stick-table: unknown type '{line.arg(1)}' (expected "
                  f"{quoted_list(types, 'or')}).")
    table_type, length, size, expire, nopurge = types[line.arg(1)], 32, 0, None, False
    store: list[StoreItem] = []
    index = 2
    while index < len(line.args):
        word, value = line.args[index], line.arg(index + 1)
        if word == "len" and table_type in (StickTableType.STRING, StickTableType.BINARY):
            if not value.isdigit() or int(value) == 0:
                line.fail(f"stick-table: 'len' expects a positive integer (got '{value}').")
            length = int(value)
        elif word == "size":
            size = _table_number(line, value, "size")
        elif word == "expire":
            try:
                expire = parse_time(value) or None
            except UnitError as exc:
                line.fail(f"stick-table: {_unit_message(exc, 'expire')}")
        elif word == "store":
            _add_store(line, store, value)
        elif word == "peers":
            line.warn("stick-table: 'peers' is ignored by geoproxy: every process already shares "
                      "the table through Redis.")
        elif word in ("srvkey", "write-to"):
            line.fail(f"stick-table: '{word}' is not supported by geoproxy.")
        elif word == "nopurge":
            nopurge, index = True, index - 1
        else:
            line.fail(f"stick-table: unknown argument '{word}'.")
        index += 2
    if size == 0:
        line.fail("stick-table: missing size.")
    return StickTable(table_type, size, line.location, length, expire, nopurge, tuple(store))


def _add_store(line: Line, store: list[StoreItem], text: str) -> None:
    try:
        items = parse_store(text, _period_ms)
    except StoreError as exc:
        line.fail(str(exc))
    for item in items:
        if any(known.name == item.name for known in store):
            line.warn(f"stick-table: store option '{item.name}' already enabled, ignored.")
        else:
            store.append(item)
    refusal = check_combination(store)
    if refusal is not None:
        line.fail(refusal)


def _period_ms(text: str) -> int:
    """A rate's period: HAProxy's time format, milliseconds by default (``UnitError`` is a
    ``ValueError``)."""
    return round(parse_time(text) * 1000)


def _table_number(line: Line, value: str, name: str) -> int:
    try:
        return parse_size(value)
    except UnitError as exc:
        line.fail(f"stick-table: {_unit_message(exc, name)}")


def _unit_message(exc: UnitError, name: str) -> str:
    if exc.character is None and not exc.overflow:
        return f"'{name}' expects a value."
    if exc.overflow:
        return exc.describe(name)
    return f"unexpected character '{exc.character}' in argument of '{name}'."
