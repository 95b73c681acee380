"""``show table``, ``clear table``, ``set table``: the stick tables geoproxy keeps in Redis,
in HAProxy 2.6's words.

Rules:
1. A table is a backend's ``stick-table`` (named after the backend, as in HAProxy). Its
   entries are fleet-wide (Redis), each with its data: ``server_id`` (the server's position in
   the backend, 1-based, as HAProxy numbers servers) and ``server_key`` (its name).
2. Data columns are written in HAProxy's data-type order (``DATA_TYPES``). A table stores
   ``server_id`` and ``server_key``, plus whatever its ``store`` clause names once the
   configuration carries one: counters in an entry's data slot in by name.
3. An entry's address (``0x...``) is a stable hash of the table and key: geoproxy's entries
   live in Redis, not at an address; clients read ``key=`` and the data.
4. Levels, as HAProxy: ``show table NAME`` dumps entries from level operator (a user gets the
   header and a notice), ``clear table`` does nothing at level user, ``set table`` needs
   operator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from geoproxy.config.model import Backend

from .context import CommandError, Context, Level, StickRowLike

# HAProxy 2.6's stick-table data types, in its order (src/stick_table.c stktable_data_types)
DATA_TYPES = (
    "server_id", "gpt0", "gpc0", "gpc0_rate", "conn_cnt", "conn_rate", "conn_cur", "sess_cnt",
    "sess_rate", "http_req_cnt", "http_req_rate", "http_err_cnt", "http_err_rate",
    "bytes_in_cnt", "bytes_in_rate", "bytes_out_cnt", "bytes_out_rate", "gpc1", "gpc1_rate",
    "server_key", "http_fail_cnt", "http_fail_rate", "gpt", "gpc", "gpc_rate",
)
_OPERATORS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "le": lambda a, b: a <= b,
    "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "gt": lambda a, b: a > b,
}
_FILTER_USAGE = ('Optional argument only supports "data.<store_data_type>" <operator> <value> '
                 "and key <key>")


def _tables(ctx: Context) -> list[Backend]:
    return [b for b in ctx.config().backends if b.stick_table is not None]


def _table(ctx: Context, name: str) -> Backend:
    table = next((b for b in _tables(ctx) if b.name == name), None)
    if table is None:
        raise CommandError("No such table")
    return table


def stored_types(table: Backend) -> tuple[str, ...]:
    """The data types ``table`` stores, in HAProxy's order (rule 2)."""
    stored = {"server_id", "server_key"}
    stored.update(getattr(table.stick_table, "store", ()) or ())
    return tuple(name for name in DATA_TYPES if name in stored)


def _data(table: Backend, row: StickRowLike) -> dict[str, str]:
    """An entry's data as HAProxy names it: the server it sends to, and any counter."""
    server = row.data.get("server", "")
    ids = {s.name: index for index, s in enumerate(table.servers, start=1)}
    data = {"server_id": str(ids.get(server, 0)), "server_key": server or "-"}
    data.update({name: value for name, value in row.data.items() if name != "server"})
    return data


def _header(table: Backend, used: int) -> str:
    stick = table.stick_table
    assert stick is not None
    return f"# table: {table.name}, type: {stick.type.value}, size:{stick.size}, used:{used}\n"


def _address(table: str, key: str) -> str:
    return "0x" + hashlib.blake2b(f"{table}\0{key}".encode(), digest_size=6).hexdigest()


def _line(table: Backend, row: StickRowLike) -> str:
    data = _data(table, row)
    cells = " ".join(f"{name}={data.get(name, '0')}" for name in stored_types(table))
    return (f"{_address(table.name, row.key)}: key={row.key} use=0 exp={row.expire_ms or 0} "
            f"{cells}\n")


def _filter(table: Backend, words: Sequence[str]) -> tuple[str | None, list[tuple[str, str, int]]]:
    """``key K`` and ``data.TYPE OP VALUE`` filters: (the key, the data conditions)."""
    key: str | None = None
    conditions: list[tuple[str, str, int]] = []
    words = list(words)
    number = 0
    while words:
        word = words.pop(0)
        if word == "key":
            if not words:
                raise CommandError("Key value expected")
            key = words.pop(0)
            continue
        if not word.startswith("data."):
            raise CommandError(_FILTER_USAGE)
        number += 1
        name = word[len("data."):]
        if name not in DATA_TYPES:
            raise CommandError(f"Filter entry #{number}: Unknown data type")
        if name not in stored_types(table):
            raise CommandError(f"Filter entry #{number}: Data type not stored in this table")
        operator = words.pop(0) if words else ""
        if operator not in _OPERATORS:
            raise CommandError(f'Filter entry #{number}: Require and operator among "eq", "ne", '
                               '"le", "ge", "lt", "gt"')
        value = words.pop(0) if words else ""
        if not value.lstrip("-").isdigit():
            raise CommandError(f"Filter entry #{number}: Require a valid integer value to "
                               "compare against")
        conditions.append((name, operator, int(value)))
    return key, conditions


def _matching(ctx: Context, table: Backend, words: Sequence[str]) -> list[StickRowLike]:
    key, conditions = _filter(table, words)
    rows = ctx.control.stick_rows(table.name, key)

    def keep(row: StickRowLike) -> bool:
        data = _data(table, row)
        return all(_OPERATORS[op](int(data.get(name, "0") or 0), value)
                   for name, op, value in conditions)

    return [row for row in rows if keep(row)]


def show_table(ctx: Context, args: Sequence[str]) -> str:
    if not args:
        return "".join(
            _header(t, len(ctx.control.stick_rows(t.name))) for t in _tables(ctx)
        )
    table = _table(ctx, args[0])
    if ctx.level < Level.OPERATOR:
        used = len(ctx.control.stick_rows(table.name))
        return _header(table, used) + "# contents not dumped due to insufficient privileges\n"
    rows = _matching(ctx, table, args[1:])
    used = len(ctx.control.stick_rows(table.name)) if len(args) > 1 else len(rows)
    return _header(table, used) + "".join(_line(table, row) for row in rows)


def clear_table(ctx: Context, args: Sequence[str]) -> str:
    if not args:
        raise CommandError('Required arguments: <table> "data.<store_data_type>" <operator> '
                           "<value> or <table> key <key>")
    table = _table(ctx, args[0])
    if ctx.level < Level.OPERATOR:
        return ""  # HAProxy clears nothing for a user, and says nothing
    if len(args) == 1:
        ctx.control.stick_clear(table.name)
        return ""
    for row in _matching(ctx, table, args[1:]):
        ctx.control.stick_clear(table.name, row.key)
    return ""


def set_table(ctx: Context, args: Sequence[str]) -> str:
    """``set table NAME key K [data.server_id N] [data.server_key NAME]``."""
    ctx.require(Level.OPERATOR)
    if not args:
        raise CommandError("No such table")
    table = _table(ctx, args[0])
    words = list(args[1:])
    if not words:
        return ""
    if words[0] != "key":
        raise CommandError('content-based lookup is only supported with the "show" and '
                           '"clear" actions')
    if len(words) < 2:
        raise CommandError("Key value expected")
    key, words = words[1], words[2:]
    current = ctx.control.stick_rows(table.name, key)
    server = current[0].data.get("server", "") if current else ""
    while words:
        name = words.pop(0)
        if not name.startswith("data.") or name[len("data."):] not in DATA_TYPES:
            raise CommandError("Unknown data type")
        name = name[len("data."):]
        if name not in stored_types(table):
            raise CommandError("Data type not stored in this table")
        value = words.pop(0) if words else ""
        if name == "server_id":
            if not value.lstrip("-").isdigit():
                raise CommandError("Require a valid integer value to store")
            index = int(value)
            server = table.servers[index - 1].name if 0 < index <= len(table.servers) else ""
        else:
            server = value if table.server(value) is not None else ""
    stick = table.stick_table
    expire = int(stick.expire * 1000) if stick is not None and stick.expire else None
    ctx.control.stick_set(table.name, key, server, expire)
    return ""
