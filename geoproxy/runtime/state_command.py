"""``geoproxy state``: every backend's servers as the fleet shares them in Redis."""

from __future__ import annotations

import sys

from geoproxy.state.connect import RedisUrlError, redact
from geoproxy.state.redis_store import REDIS_ERRORS, RedisFleetState
from geoproxy.state.store import BackendReport, ServerReport

_COLUMNS = (
    "server",
    "address",
    "admin",
    "oper",
    "weight",
    "inflight",
    "queued",
    "total",
    "errors",
    "backup",
    "check",
    "streak",
    "changed",
)


def _since(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def _check(server: ServerReport) -> str:
    if not server.check:
        return "-"
    return f"{server.check} ({server.check_ms}ms)" if server.check_ms is not None else server.check


def format_report(reports: list[BackendReport]) -> str:
    lines: list[str] = []
    for report in reports:
        lines.append(
            f"backend {report.name} ({report.live_workers} live workers, "
            f"{report.queued} queued in the backend)"
        )
        rows = [_COLUMNS] + [
            (
                server.name,
                server.address,
                server.admin,
                server.oper,
                f"{server.weight}/{server.cfg_weight}",
                str(server.inflight),
                str(server.queued),
                str(server.total),
                str(server.errors),
                "yes" if server.backup else "no",
                _check(server),
                server.streak or "-",
                _since(server.since_change),
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
    try:
        store = RedisFleetState(redis_url, worker_id="geoproxy-state")
    except RedisUrlError as error:
        print(f"geoproxy state: {error}", file=sys.stderr)
        return 2
    try:
        print(format_report(store.report()), end="")
    except REDIS_ERRORS as error:
        print(f"geoproxy state: cannot read {redact(redis_url)}: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
