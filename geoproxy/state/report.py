"""Reading the whole fleet's state from Redis alone, for ``geoproxy state``, ``geoproxy top`` and
the stats page: nothing here needs the configuration, so any host, or an operator's laptop, can
ask. One pipeline per backend; time is the Redis server's clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

from geoproxy.state.connect import Client
from geoproxy.state.keys import BACKENDS, FRONTENDS_ADMIN, backend_keys
from geoproxy.state.snapshot import effective_weight
from geoproxy.state.store import BackendReport, FleetReport, FrontendReport, ServerReport

_NOT_RUNNING = ("down", "going-up")


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def session_rate(fields: Mapping[str, str], prefix: str, now_ms: int) -> int:
    """HAProxy's ``read_freq_ctr`` over one-second periods: the current second's count plus
    the previous second's, weighted by the part of the last second it still covers (the fields
    stats.lua keeps: ``rate_sec``, ``rate_cur``, ``rate_prev``)."""
    second, current = _int(fields.get(prefix + "rate_sec")), _int(fields.get(prefix + "rate_cur"))
    now_second, elapsed_ms = divmod(now_ms, 1000)
    remaining = 1000 - elapsed_ms
    if second == now_second:
        return current + _int(fields.get(prefix + "rate_prev")) * remaining // 1000
    if second == now_second - 1:
        return current * remaining // 1000
    return 0


def _downtime(detail: dict[str, str], now_ms: int) -> float:
    spent = _int(detail.get("downtime_ms"))
    changed = _int(detail.get("last_change"))
    if detail.get("oper") in _NOT_RUNNING and changed:
        spent += now_ms - changed
    return spent / 1000


def _server_row(
    name: str, detail: dict[str, str], counts: tuple[int, int, int], now_ms: int
) -> ServerReport:
    inflight, total, queued = counts
    weight = _int(detail.get("weight"), _int(detail.get("cfg_weight"), 1))
    if detail.get("nolb") == "1":
        weight = 0  # disable-on-404 saw a 404 (HAProxy's NOLB)
    slowstart = float(detail.get("slowstart") or 0)
    ok, failed = _int(detail.get("check_ok")), _int(detail.get("check_fail"))
    changed = _int(detail.get("last_change"))
    checked_at = _int(detail.get("checked_at"))
    err_conn, err_resp = _int(detail.get("err_conn")), _int(detail.get("err_resp"))
    rise, fall = _int(detail.get("rise"), 2), _int(detail.get("fall"), 3)
    address, admin = detail.get("addr", ""), detail.get("admin", "")
    resolved = detail.get("resolved")
    if resolved is not None:  # run-time resolution: where it is now, or MAINT (resolution)
        port = address.rpartition(":")[2]
        shown = f"[{resolved}]" if ":" in (resolved or "") else resolved
        address = f"{shown}:{port}" if resolved else f"{address} (no address)"
        admin = admin if resolved else "maint"
    return ServerReport(
        name=name,
        address=address,
        admin=admin,
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
        errors=err_conn + err_resp,
        since_change=(now_ms - changed) / 1000 if changed else None,
        maxconn=_int(detail.get("maxconn")),
        maxqueue=_int(detail.get("maxqueue")),
        checked=detail.get("check") == "1",
        health=_int(detail.get("health"), rise + fall - 1),
        rise=rise,
        fall=fall,
        check_failures=_int(detail.get("failed_checks")),
        downs=_int(detail.get("downs")),
        downtime=_downtime(detail, now_ms),
        err_conn=err_conn,
        err_resp=err_resp,
        bytes_in=_int(detail.get("bytes_in")),
        bytes_out=_int(detail.get("bytes_out")),
        retries=_int(detail.get("retries")),
        redispatches=_int(detail.get("redispatches")),
        max_inflight=_int(detail.get("max_inflight")),
        max_queued=_int(detail.get("max_queued")),
        rate=session_rate(detail, "", now_ms),
        rate_max=_int(detail.get("rate_max")),
        last_check=(now_ms - checked_at) / 1000 if checked_at else None,
    )


def _frontend_figures(stats: dict[str, str], now_ms: int) -> dict[str, FrontendReport]:
    """The per-frontend fields (``fe:F:...``) of one backend's statistics hash."""
    suffix = ":sessions"
    names = {f[3 : -len(suffix)] for f in stats if f.startswith("fe:") and f.endswith(suffix)}
    figures = {}
    for name in names:
        prefix = f"fe:{name}:"
        figures[name] = FrontendReport(
            name=name,
            sessions=_int(stats.get(prefix + "sessions")),
            bytes_in=_int(stats.get(prefix + "bytes_in")),
            bytes_out=_int(stats.get(prefix + "bytes_out")),
            rate=session_rate(stats, prefix, now_ms),
        )
    return figures


def _add(first: FrontendReport, second: FrontendReport) -> FrontendReport:
    return FrontendReport(
        name=first.name,
        sessions=first.sessions + second.sessions,
        bytes_in=first.bytes_in + second.bytes_in,
        bytes_out=first.bytes_out + second.bytes_out,
        rate=first.rate + second.rate,
    )


def _read_backend(
    client: Client, name: str, now_ms: int
) -> tuple[BackendReport, dict[str, FrontendReport], list[str]]:
    keys = backend_keys(name)
    servers = cast(list[str], client.zrange(keys.servers, 0, -1))
    pipe = client.pipeline(transaction=False)
    for server in servers:
        pipe.hgetall(keys.server_stats(server))
        pipe.hgetall(keys.server(server))
        pipe.zcard(keys.server_queue(server))
    pipe.hgetall(keys.inflight)
    pipe.hgetall(keys.total)
    pipe.zrangebyscore(keys.workers, now_ms, "+inf")
    pipe.zcard(keys.queue)
    pipe.hgetall(keys.stats)
    *per_server, inflight, total, live, queued, stats = pipe.execute()
    rows = tuple(
        _server_row(
            server,
            {**per_server[3 * i], **per_server[3 * i + 1]},  # statistics, then state
            (_int(inflight.get(server)), _int(total.get(server)), _int(per_server[3 * i + 2])),
            now_ms,
        )
        for i, server in enumerate(servers)
    )
    report = BackendReport(
        name=name,
        servers=rows,
        live_workers=len(live),
        queued=int(queued),
        max_inflight=_int(stats.get("max_inflight")),
        max_queued=_int(stats.get("max_queued")),
        rate=session_rate(stats, "", now_ms),
        rate_max=_int(stats.get("rate_max")),
    )
    return report, _frontend_figures(stats, now_ms), list(live)


def read_fleet(client: Client) -> FleetReport:
    """Every registered backend (servers in configuration order), the frontends that sent
    them traffic or that an operator disabled (``paused``), and the live workers of every
    host."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    backends = []
    frontends: dict[str, FrontendReport] = {}
    workers: set[str] = set()
    for name in sorted(cast(set[str], client.smembers(BACKENDS))):
        report, figures, live = _read_backend(client, name, now_ms)
        backends.append(report)
        workers.update(live)
        for front in figures.values():
            known = frontends.get(front.name)
            frontends[front.name] = _add(known, front) if known else front
    for name in cast(list[str], client.hkeys(FRONTENDS_ADMIN)):
        frontends[name] = replace(frontends.get(name) or FrontendReport(name), paused=True)
    return FleetReport(
        backends=tuple(backends),
        frontends=tuple(frontends[name] for name in sorted(frontends)),
        workers=tuple(sorted(workers)),
        now_ms=now_ms,
    )


def read_report(client: Client) -> list[BackendReport]:
    """Every registered backend, its servers in configuration order."""
    return list(read_fleet(client).backends)
