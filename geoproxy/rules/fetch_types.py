"""Types shared by the fetch table and the fetches (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from geoproxy.rules.auth import Userlist
from geoproxy.rules.spec import ArgValue
from geoproxy.rules.txn import Txn

if TYPE_CHECKING:
    from geoproxy.counters.registry import CounterTables

Fetch = Callable[[Txn], object]
FetchAll = Callable[[Txn], Iterable[object]]
Args = tuple[ArgValue, ...]


@dataclass(frozen=True, slots=True)
class CompileEnv:
    """What compiling a fetch may need from the whole configuration: the userlists, this
    worker's stick counters (None: no counter is ever found), and the proxy whose rule is
    being compiled (the "current proxy" whose table ``src_*`` and ``table_cnt`` read)."""

    userlists: Mapping[str, Userlist] = field(default_factory=dict)
    counters: CounterTables | None = None
    proxy: str = ""


@dataclass(frozen=True, slots=True)
class FetchDef:
    """One fetch (rule 1)."""

    signature: str
    output: str  # str | int | bool | ip | bin | meth
    make: Callable[[Args, CompileEnv], Fetch]
    make_all: Callable[[Args, CompileEnv], FetchAll] | None = None
    needs: str = "req"  # req | res | any
    # the sample as text, when that is cheaper than the sample (log-format strings)
    make_text: Callable[[Args, CompileEnv], Callable[[Txn], str | None]] | None = None
