"""What a stick table may ``store`` (manual 4.2, ``stick-table``), parsed once (pure).

Rules:
1. Each entry keeps named fields: counters (``http_req_cnt``, ``gpc0``...), tags (``gpt0``),
   rates (``http_req_rate``, ``gpc0_rate``...: a ``FreqCtr`` over the period the table names)
   and one gauge, ``conn_cur`` (counted per process, summed over the fleet). ``server_id`` is
   the persistence entry (``stick on``...), kept apart (``gp:{T}:stick:K``).
2. The arrays ``gpc(N)``, ``gpc_rate(N,P)`` and ``gpt(N)`` store fields ``gpc0``..,
   ``gpc0_rate``.., ``gpt0``..; the legacy ``gpc0``, ``gpc1``, ``gpc0_rate``, ``gpc1_rate`` and
   ``gpt0`` store the same fields, and a table may not mix the two forms (HAProxy's error).
   The array-only fetches and actions (``sc_get_gpc(IDX,...)``, ``sc-inc-gpc``) work on array
   tables only; the ``gpc0``/``gpc1``/``gpt0`` ones on both.
3. Periods are milliseconds (a bare number is in milliseconds, ``10s`` is 10000).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

# the store options and their kind: count, rate, gauge, tag, server, and the arrays
COUNTS: Final = ("conn_cnt", "sess_cnt", "http_req_cnt", "http_err_cnt", "http_fail_cnt",
                 "bytes_in_cnt", "bytes_out_cnt")
RATES: Final = ("conn_rate", "sess_rate", "http_req_rate", "http_err_rate", "http_fail_rate",
                "bytes_in_rate", "bytes_out_rate")
LEGACY_GPC: Final = ("gpc0", "gpc1")
LEGACY_GPC_RATE: Final = ("gpc0_rate", "gpc1_rate")
OPTIONS: Final = frozenset({*COUNTS, *RATES, *LEGACY_GPC, *LEGACY_GPC_RATE, "conn_cur",
                            "gpt0", "server_id", "gpc", "gpc_rate", "gpt"})
# options that take arguments: how many (the period last)
ARGUMENTS: Final[Mapping[str, int]] = {
    **dict.fromkeys(RATES, 1), **dict.fromkeys(LEGACY_GPC_RATE, 1),
    "gpc": 1, "gpt": 1, "gpc_rate": 2,
}
ARRAY_LIMIT: Final = 100


class StoreError(ValueError):
    """A store option HAProxy refuses; the message is HAProxy's."""


@dataclass(frozen=True, slots=True)
class StoreItem:
    """One ``store`` option as written: ``http_req_rate(10s)`` is name ``http_req_rate``,
    period 10000; ``gpc(3)`` is name ``gpc``, count 3."""

    name: str
    period: int = 0  # milliseconds, rates only
    count: int = 0  # arrays only


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """The fields one table keeps (rule 1), built from its ``StoreItem`` values."""

    counts: frozenset[str] = frozenset()  # counter fields, gpcN included
    tags: frozenset[str] = frozenset()  # gptN
    rates: Mapping[str, int] = field(default_factory=dict)  # rate field -> period, ms
    conn_cur: bool = False
    gpc_array: bool = False
    gpt_array: bool = False

    @classmethod
    def of(cls, items: tuple[StoreItem, ...]) -> StoreSpec:
        counts: set[str] = set()
        tags: set[str] = set()
        rates: dict[str, int] = {}
        conn_cur = gpc_array = gpt_array = False
        for item in items:
            name = item.name
            if name in COUNTS or name in LEGACY_GPC:
                counts.add(name)
            elif name in RATES or name in LEGACY_GPC_RATE:
                rates[name] = item.period
            elif name == "conn_cur":
                conn_cur = True
            elif name == "gpt0":
                tags.add(name)
            elif name == "gpc":
                gpc_array = True
                counts.update(f"gpc{i}" for i in range(item.count))
            elif name == "gpc_rate":
                gpc_array = True
                rates.update((f"gpc{i}_rate", item.period) for i in range(item.count))
            elif name == "gpt":
                gpt_array = True
                tags.update(f"gpt{i}" for i in range(item.count))
        return cls(frozenset(counts), frozenset(tags), rates, conn_cur, gpc_array, gpt_array)

    def stores(self, name: str) -> bool:
        """Whether field ``name`` (``http_req_cnt``, ``gpc0_rate``, ``conn_cur``...) is kept."""
        if name == "conn_cur":
            return self.conn_cur
        return name in self.counts or name in self.rates or name in self.tags

    @property
    def is_empty(self) -> bool:
        return not (self.counts or self.tags or self.rates or self.conn_cur)


def parse_store(text: str, parse_period: Callable[[str], int]) -> list[StoreItem]:
    """The items of one ``store`` argument (comma-separated, ``name`` or ``name(args)``).
    ``parse_period`` turns a period's text into milliseconds (raising ``ValueError``). Raises
    ``StoreError`` with HAProxy's message."""
    items: list[StoreItem] = []
    for word in _split(text):
        name, _, rest = word.partition("(")
        if name not in OPTIONS:
            raise StoreError(f"stick-table: unknown store option '{name}'.")
        wanted = ARGUMENTS.get(name, 0)
        if not rest:
            if wanted:
                raise StoreError(f"stick-table: missing argument to store option '{name}'.")
            items.append(StoreItem(name))
            continue
        if not wanted:
            raise StoreError(f"stick-table: unexpected argument to store option '{name}'.")
        args = rest[:-1].split(",") if rest.endswith(")") else [""]
        if len(args) < wanted:
            raise StoreError(f"stick-table: missing argument to store option '{name}'.")
        try:
            if name in ("gpc", "gpt", "gpc_rate"):
                count = int(args[0])
                if not 0 < count <= ARRAY_LIMIT:
                    raise StoreError(f"stick-table: array size is out of allowed range "
                                     f"(1-{ARRAY_LIMIT}) for store option '{name}'.")
                period = parse_period(args[1]) if name == "gpc_rate" else 0
                items.append(StoreItem(name, period, count))
            else:  # HAProxy reads the period and ignores what may follow it
                items.append(StoreItem(name, parse_period(args[0])))
        except StoreError:
            raise
        except ValueError:
            raise StoreError(f"stick-table: error when processing store option "
                             f"'{name}'.") from None
    return items


def check_combination(items: list[StoreItem]) -> str | None:
    """HAProxy's refusal of a table mixing array and legacy forms (rule 2), else None."""
    names = {item.name for item in items}
    if "gpc" in names and names & {"gpc0", "gpc1"}:
        return ("stick-table: simultaneous usage of 'gpc' and 'gpc[0/1]' in a same table is "
                "not permitted as 'gpc' overrides 'gpc[0/1]'.")
    if "gpc_rate" in names and names & {"gpc0_rate", "gpc1_rate"}:
        return ("stick-table: simultaneous usage of 'gpc_rate' and 'gpc[0/1]_rate' in a same "
                "table is not permitted as 'gpc_rate' overrides 'gpc[0/1]_rate'.")
    if "gpt" in names and "gpt0" in names:
        return ("stick-table: simultaneous usage of 'gpt' and 'gpt0' in a same table is not "
                "permitted as 'gpt' overrides 'gpt0'.")
    return None


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses (``gpc_rate(2,10s),gpc0``)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part for part in parts if part]
