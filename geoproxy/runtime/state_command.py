"""``geoproxy state``: every backend's servers as the fleet shares them in Redis."""

from __future__ import annotations

import sys

from geoproxy.state.redis_store import REDIS_ERRORS, RedisFleetState
from geoproxy.state.store import BackendReport

_COLUMNS = ("server", "address", "admin", "oper", "weight", "inflight", "total", "backup")


def format_report(reports: list[BackendReport]) -> str:
    lines: list[str] = []
    for report in reports:
        lines.append(f"backend {report.name} ({report.live_workers} live workers)")
        rows = [_COLUMNS] + [
            (
                server.name,
                server.address,
                server.admin,
                server.oper,
                str(server.weight),
                str(server.inflight),
                str(server.total),
                "yes" if server.backup else "no",
            )
            for server in report.servers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        for row in rows:
            lines.append(
                "  "
                + "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
        lines.append("")
    return "\n".join(lines) if lines else "no backend registered in this Redis\n"


def print_state(redis_url: str) -> int:
    store = RedisFleetState(redis_url, worker_id="geoproxy-state")
    try:
        print(format_report(store.report()), end="")
    except REDIS_ERRORS as error:
        print(f"geoproxy state: cannot read {redis_url}: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
