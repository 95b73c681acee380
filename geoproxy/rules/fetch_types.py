"""Types shared by the fetch table and the fetches (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from geoproxy.rules.auth import Userlist
from geoproxy.rules.spec import ArgValue
from geoproxy.rules.txn import Txn

Fetch = Callable[[Txn], object]
FetchAll = Callable[[Txn], Iterable[object]]
Args = tuple[ArgValue, ...]


@dataclass(frozen=True, slots=True)
class CompileEnv:
    """What compiling a fetch may need from the whole configuration."""

    userlists: Mapping[str, Userlist] = field(default_factory=dict)


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
