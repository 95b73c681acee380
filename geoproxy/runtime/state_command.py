"""``geoproxy state``: every backend's servers as the fleet shares them in Redis."""

from __future__ import annotations

import sys

from geoproxy.balance.view import AdminState
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


def set_server(redis_url: str, target: str, field: str, value: str) -> int:
    """``geoproxy set server BACKEND/SERVER state|weight VALUE``: every worker of every host
    applies it at its next snapshot refresh (within a second)."""
    backend, slash, server = target.partition("/")
    if not slash or not backend or not server:
        print(f"geoproxy set: expected BACKEND/SERVER, got {target!r}", file=sys.stderr)
        return 2
    try:
        store = RedisFleetState(redis_url, worker_id="geoproxy-set")
    except RedisUrlError as error:
        print(f"geoproxy set: {error}", file=sys.stderr)
        return 2
    try:
        if field == "state":
            try:
                state = AdminState(value)
            except ValueError:
                print(
                    f"geoproxy set: state must be ready, drain or maint, not {value!r}",
                    file=sys.stderr,
                )
                return 2
            store.health.set_admin(backend, server, state)
        else:
            store.health.set_weight(backend, server, _weight(store, backend, server, value))
    except (KeyError, ValueError) as error:
        print(f"geoproxy set: {error.args[0] if error.args else error}", file=sys.stderr)
        return 1
    except REDIS_ERRORS as error:
        print(f"geoproxy set: cannot reach {redact(redis_url)}: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{backend}/{server}: {field} set to {value}")
    return 0


def _weight(store: RedisFleetState, backend: str, server: str, value: str) -> int:
    """An absolute weight, or ``N%`` of the configured one, rounded down and capped at 256 as
    HAProxy's runtime API does (150% of 1 is 1, 3000% of 10 is 256)."""
    if value.endswith("%"):
        if not value[:-1].isdigit():
            raise ValueError(f"a relative weight must be a positive N%, not {value!r}")
        configured = int(store.health.server_state(backend, server).get("cfg_weight", 1))
        return min(configured * min(int(value[:-1]), 25600) // 100, 256)
    if not value.isdigit():
        raise ValueError(f"weight must be a number from 0 to 256 or N%, not {value!r}")
    return int(value)
