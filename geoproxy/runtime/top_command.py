"""``geoproxy top``: the fleet in a terminal, refreshed every second, the way operators watch
``hatop``: one table per proxy with the stats page's rows and colours, read from Redis alone.

Every frontend any master registered is shown (``state/frontends.py``), with or without
traffic, and a listener that serves only the stats page has its BACKEND UP, as on the page.
``q`` quits (the header says so), as does Ctrl-C; ``--once`` prints one frame and exits
(scripts, tests); ``--count N`` stops after N frames.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from geoproxy.admin.html import duration
from geoproxy.admin.rows import Proxy, StatsRow, proxies, with_frontends
from geoproxy.runtime.keypress import QuitKey
from geoproxy.state.frontends import STATS, FrontendDirectory
from geoproxy.state.redis_store import REDIS_ERRORS, RedisFleetState
from geoproxy.state.store import FleetReport

QUIT_HINT = "press q to quit"

# the page's colours, as terminal styles
_STYLES = {
    "active_up": "green",
    "backup_up": "cyan",
    "active_going_down": "yellow",
    "backup_going_down": "magenta",
    "active_going_up": "dark_orange",
    "backup_going_up": "magenta",
    "active_down": "bold red",
    "backup_down": "bold red",
    "active_draining": "bold blue",
    "backup_draining": "bold blue",
    "maintain": "bold dark_orange3",
    "active_no_check": "white",
    "backup_no_check": "cyan",
}
_COLUMNS = ("name", "status", "wght", "cur", "max", "queue", "qmax", "total", "rate", "rmax",
            "in", "out", "econ", "eresp", "retr", "redis", "last check", "dwntme", "since")


def _size(value: object) -> str:
    """Bytes as ``hatop`` shows them: 812, 12.4K, 3.0M."""
    if not isinstance(value, int):
        return ""
    if value < 1024:
        return str(value)
    scaled = float(value)
    for unit in ("K", "M", "G"):
        scaled /= 1024
        if scaled < 1024 or unit == "G":
            break
    return f"{scaled:.1f}{unit}"


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _row_cells(row: StatsRow) -> list[Text | str]:
    check = ""
    if row.check_status is not None:
        took = f" {row.check_duration}ms" if row.check_duration is not None else ""
        check = f"{row.check_status}{took}"
    downtime = duration(row.downtime) if isinstance(row.downtime, int) else ""
    since = duration(row.lastchg) if isinstance(row.lastchg, int) else ""
    return [
        Text(_cell(row.svname)),
        Text(_cell(row.status), style=_STYLES.get(row.css, "")),
        *(_cell(v) for v in (row.weight, row.scur, row.smax, row.qcur, row.qmax, row.stot,
                             row.rate, row.rate_max)),
        _size(row.bin),
        _size(row.bout),
        *(_cell(v) for v in (row.econ, row.eresp, row.wretr, row.wredis)),
        check,
        downtime,
        since,
    ]


def proxy_table(proxy: Proxy) -> Table:
    table = Table(title=proxy.name, title_justify="left", title_style="bold", expand=False,
                  pad_edge=False, header_style="bold cyan", box=box.SIMPLE_HEAD)
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column in ("name", "status") else "right")
    for row in proxy.rows:
        table.add_row(*_row_cells(row), style="dim" if row.type != 2 else None)
    return table


def render_fleet(
    report: FleetReport, applets: Sequence[str] = (), hint: str | None = None
) -> Group:
    """One frame: the live hosts, then every proxy; ``applets`` are the stats-only
    listeners, ``hint`` what the header says the operator may press."""
    per_host: dict[str, int] = {}
    for worker in report.workers:
        host = worker.rpartition(":")[0]
        per_host[host] = per_host.get(host, 0) + 1
    hosts = ", ".join(f"{host} ({count} workers)" for host, count in sorted(per_host.items()))
    clock = time.strftime("%H:%M:%S", time.gmtime(report.now_ms / 1000))
    header = Text(f"geoproxy top  {clock} UTC  live hosts: {hosts or 'none'}", style="bold")
    if hint:
        header.append(f"  ({hint})", style="dim")
    tables = (proxy_table(proxy) for proxy in proxies(report, applets=applets))
    return Group(header, *tables)


class _Fleet:
    """What one frame reads: the fleet's report and its registered frontends."""

    def __init__(self, redis_url: str) -> None:
        self._store = RedisFleetState(redis_url, worker_id="geoproxy-top")
        self._frontends = FrontendDirectory(redis_url)

    def frame(self, hint: str | None = None) -> Group:
        kinds = self._frontends.read()
        report = with_frontends(self._store.fleet_report(), sorted(kinds))
        return render_fleet(report, [name for name, kind in kinds.items() if kind == STATS], hint)

    def close(self) -> None:
        self._frontends.close()
        self._store.close()


def run_top(redis_url: str, interval: float = 1.0, count: int | None = None,
            once: bool = False, console: Console | None = None) -> int:
    fleet = _Fleet(redis_url)
    console = console or Console()
    try:
        if once:
            console.print(fleet.frame())
            return 0
        with QuitKey() as keys:
            hint = QUIT_HINT if keys.reads_keys else None
            with Live(fleet.frame(hint), console=console, refresh_per_second=4,
                      screen=False) as live:
                shown = 1
                while count is None or shown < count:
                    if keys.wait(interval):
                        break
                    live.update(fleet.frame(hint))
                    shown += 1
    except REDIS_ERRORS as error:
        print(f"geoproxy top: cannot read {redis_url}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        fleet.close()
    return 0
