"""Reading the whole fleet's state from Redis alone, for ``geoproxy state`` (and the stats page):
nothing here needs the configuration, so any host, or an operator's laptop, can ask."""

from __future__ import annotations

from typing import Any, cast

from geoproxy.state.connect import Client
from geoproxy.state.keys import BACKENDS, backend_keys
from geoproxy.state.snapshot import effective_weight
from geoproxy.state.store import BackendReport, ServerReport


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _server_row(
    name: str, detail: dict[str, str], inflight: int, total: int, queued: int, now_ms: int
) -> ServerReport:
    weight = _int(detail.get("weight"), _int(detail.get("cfg_weight"), 1))
    slowstart = float(detail.get("slowstart") or 0)
    ok, failed = _int(detail.get("check_ok")), _int(detail.get("check_fail"))
    changed = _int(detail.get("last_change"))
    return ServerReport(
        name=name,
        address=detail.get("addr", ""),
        admin=detail.get("admin", ""),
        oper=detail.get("oper", ""),
        weight=effective_weight(weight, slowstart, _int(detail.get("up_since")), now_ms),
        cfg_weight=_int(detail.get("cfg_weight"), weight),
        inflight=inflight,
        queued=queued,
        total=total,
        backup=detail.get("backup") == "1",
        check=" ".join(filter(None, (detail.get("check_code"), detail.get("check_desc")))),
        check_ms=_int(detail.get("check_ms"), -1) if "check_ms" in detail else None,
        streak=f"{ok} ok" if ok else (f"{failed} failed" if failed else ""),
        errors=_int(detail.get("err_conn")) + _int(detail.get("err_resp")),
        since_change=(now_ms - changed) / 1000 if changed else None,
    )


def read_report(client: Client) -> list[BackendReport]:
    """Every registered backend, its servers in configuration order."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    reports = []
    for name in sorted(cast(set[str], client.smembers(BACKENDS))):
        keys = backend_keys(name)
        servers = cast(list[str], client.zrange(keys.servers, 0, -1))
        pipe = client.pipeline(transaction=False)
        for server in servers:
            pipe.hgetall(keys.server(server))
            pipe.zcard(keys.server_queue(server))
        pipe.hgetall(keys.inflight)
        pipe.hgetall(keys.total)
        pipe.zcount(keys.workers, now_ms, "+inf")
        pipe.zcard(keys.queue)
        *per_server, inflight, total, live, queued = pipe.execute()
        rows = tuple(
            _server_row(
                server,
                per_server[2 * i],
                _int(inflight.get(server)),
                _int(total.get(server)),
                _int(per_server[2 * i + 1]),
                now_ms,
            )
            for i, server in enumerate(servers)
        )
        reports.append(
            BackendReport(name=name, servers=rows, live_workers=int(live), queued=int(queued))
        )
    return reports
