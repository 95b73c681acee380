"""``show info``, ``show stat``, ``show servers state``, ``show backend``, ``show errors``: the
fleet's figures as Redis holds them, in HAProxy 2.6's formats (hatop and Ansible parse them).

Rules:
1. ``show stat`` is the stats page's CSV (``admin/rows.py`` and ``admin/csv.py``: one source
   for both), fleet-wide; ``show stat IID|PROXY TYPE SID`` filters as HAProxy does (TYPE is a
   mask: 1 frontends, 2 backends, 4 servers, -1 all; SID only filters servers). At level user,
   ``addr`` and ``cookie`` stay empty, as HAProxy hides them.
2. ``show info`` carries HAProxy's field names, with this host's process facts (the gunicorn
   master's pid, its uptime) and fleet-wide traffic; ``Version`` is the HAProxy version whose
   Runtime API geoproxy speaks (2.6), followed by geoproxy's own.
3. ``show servers state`` is HAProxy's version 1 format, numeric states as HAProxy's enums.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from geoproxy import __version__
from geoproxy.admin.csv import render_rows
from geoproxy.admin.mount import configuration_order, frontend_kinds
from geoproxy.admin.rows import Proxy, StatsRow, proxies, with_frontends
from geoproxy.state.frontends import STATS
from geoproxy.state.store import FleetReport, ServerReport

from .context import CommandError, Context, Level

HAPROXY_VERSION = "2.6.0"  # the Runtime API geoproxy speaks; Ansible reads MAJOR.MINOR
RELEASE_DATE = "2022/05/31"  # HAProxy 2.6.0's
_USER_HIDDEN = frozenset({"addr", "cookie"})
_TYPE_BITS = {0: 1, 1: 2, 2: 4}  # row type -> HAProxy's STATS_TYPE_* mask bit


def fleet_proxies(ctx: Context, report: FleetReport | None = None) -> list[Proxy]:
    """Every proxy as the stats page lists it (configuration order, fleet-wide figures)."""
    config = ctx.config()
    report = report or ctx.control.fleet_report()
    report = with_frontends(report, [f.name for f in config.frontends])
    applets = [name for name, kind in frontend_kinds(config).items() if kind == STATS]
    return proxies(report, configuration_order(config), (), applets)


def show_stat(ctx: Context, args: Sequence[str]) -> str:
    listed = fleet_proxies(ctx)
    rows = [row for proxy in listed for row in proxy.rows]
    words = [a for a in args if a not in ("typed", "json", "desc", "up", "no-maint")]
    if len(words) >= 3:
        rows = _filtered(listed, words[0], words[1], words[2])
    if "up" in args:
        rows = [r for r in rows if r.type != 2 or str(r.status).startswith(("UP", "no check"))]
    if "no-maint" in args:
        rows = [r for r in rows if r.status != "MAINT"]
    return render_rows(rows, _USER_HIDDEN if ctx.level < Level.OPERATOR else frozenset())


def _filtered(listed: Sequence[Proxy], which: str, kind: str, sid: str) -> list[StatsRow]:
    try:
        mask, server_id = int(kind), int(sid)
    except ValueError:
        return []
    if which.lstrip("-").isdigit():
        iid = int(which)
        chosen = [p for p in listed if iid == -1 or p.iid == iid]
    else:
        chosen = [p for p in listed if p.name == which]
        if not chosen:
            raise CommandError("No such proxy.")
    return [
        row
        for proxy in chosen
        for row in proxy.rows
        if mask & _TYPE_BITS[int(row.type or 0)]
        and (row.type != 2 or server_id == -1 or row.sid == server_id)
    ]


def show_backend(ctx: Context, args: Sequence[str]) -> str:
    del args
    return "# name\n" + "".join(f"{b.name}\n" for b in ctx.config().backends)


def show_errors(ctx: Context, args: Sequence[str]) -> str:
    """geoproxy keeps no capture of invalid requests or responses: none to report."""
    del args
    ctx.require(Level.OPERATOR)
    now = ctx.clock()
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S", time.localtime(now))
    return f"Total events captured on [{stamp}.{int(now * 1000) % 1000:03d}] : 0\n"


def _uptime(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours}h{minutes:02d}m{secs:02d}s"


def show_info(ctx: Context, args: Sequence[str]) -> str:
    del args
    host, config = ctx.host, ctx.config()
    report = ctx.control.fleet_report()
    uptime = max(int(ctx.clock() - host.started), 0)
    servers = [s for b in report.backends for s in b.servers]
    cum = sum(f.sessions for f in report.frontends)
    rate = sum(f.rate for f in report.frontends)
    maxconn = config.global_.maxconn or 10000
    listeners = sum(len(f.binds) for f in config.frontends) + len(config.global_.stats_sockets)
    fields: list[tuple[str, object]] = [
        ("Name", "HAProxy"),
        ("Version", f"{HAPROXY_VERSION}-geoproxy-{__version__}"),
        ("Release_date", RELEASE_DATE),
        ("Nbthread", host.workers),
        ("Nbproc", 1),
        ("Process_num", 1),
        ("Pid", host.pid),
        ("Uptime", _uptime(uptime)),
        ("Uptime_sec", uptime),
        ("Memmax_MB", 0),
        ("PoolAlloc_MB", 0),
        ("PoolUsed_MB", 0),
        ("PoolFailed", 0),
        ("Ulimit-n", host.ulimit_n),
        ("Maxsock", host.ulimit_n),
        ("Maxconn", maxconn),
        ("Hard_maxconn", maxconn),
        ("CurrConns", sum(s.inflight for s in servers)),
        ("CumConns", cum),
        ("CumReq", cum),
        ("Maxpipes", 0),
        ("PipesUsed", 0),
        ("PipesFree", 0),
        ("ConnRate", rate),
        ("ConnRateLimit", 0),
        ("MaxConnRate", max((b.rate_max for b in report.backends), default=0)),
        ("SessRate", rate),
        ("SessRateLimit", 0),
        ("MaxSessRate", max((b.rate_max for b in report.backends), default=0)),
        ("Tasks", len(report.workers)),
        ("Run_queue", sum(b.queued for b in report.backends)),
        ("Idle_pct", 100),
        ("node", host.node),
        ("Stopping", 0),
        ("Jobs", listeners),
        ("Unstoppable Jobs", 0),
        ("Listeners", listeners),
        ("ActivePeers", 0),
        ("ConnectedPeers", 0),
        ("DroppedLogs", 0),
        ("BusyPolling", 0),
        ("FailedResolutions", 0),
        ("TotalBytesOut", sum(s.bytes_out for s in servers)),
        ("Build info", f"geoproxy {__version__} (HAProxy {HAPROXY_VERSION} Runtime API)"),
        ("Start_time_sec", int(host.started)),
        ("Tainted", 0),
    ]
    return "".join(f"{name}: {value}\n" for name, value in fields)


# HAProxy's enums, as 'show servers state' writes them
_CHECK_STATUS = {"SOCKERR": 5, "L4OK": 6, "L4TOUT": 7, "L4CON": 8, "L6OK": 9, "L6TOUT": 10,
                 "L6RSP": 11, "L7TOUT": 12, "L7RSP": 13, "L7OK": 15, "L7OKC": 16, "L7STS": 17,
                 "PROCERR": 18, "PROCTOUT": 19, "PROCOK": 20, "HANA": 4}
_PASSED = ("L4OK", "L6OK", "L7OK", "L7OKC", "PROCOK")
_SERVERS_STATE_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
    "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn "
    "srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
    "srv_agent_port"
)


def _server_state_line(iid: int, backend: str, sid: int, s: ServerReport, uptime: int) -> str:
    host, _, port = s.address.rpartition(":")
    if s.admin == "maint" or s.oper in ("down", "going-up"):
        op_state = 0
    else:
        op_state = 3 if s.oper == "stopping" else 2
    admin = {"maint": 1, "drain": 8}.get(s.admin, 0)
    code = s.check.split(" ", 1)[0] if s.check else ""
    check_status = _CHECK_STATUS.get(code, 1) if s.checked else 1
    result = (3 if code in _PASSED else 2) if s.checked and code else 0
    check_state = (6 if s.checked else 0) | (8 if s.admin == "maint" else 0)
    since = int(s.since_change) if s.since_change is not None else uptime
    return (
        f"{iid} {backend} {sid} {s.name} {host} {op_state} {admin} {s.weight} {s.cfg_weight} "
        f"{since} {check_status} {result} {s.health if s.checked else s.rise} {check_state} "
        "0 0 0 - "
        f"{port} - 0 0 - - 0\n"
    )


def show_servers_state(ctx: Context, args: Sequence[str]) -> str:
    report = ctx.control.fleet_report()
    listed = fleet_proxies(ctx, report)
    wanted = args[0] if args else ""
    if wanted and not any(p.name == wanted and p.is_backend for p in listed):
        raise CommandError("Can't find backend.")
    uptime = max(int(ctx.clock() - ctx.host.started), 0)
    backends = {b.name: b for b in report.backends}
    lines = ["1\n", _SERVERS_STATE_HEADER + "\n"]
    for proxy in listed:
        backend = backends.get(proxy.name)
        if backend is None or (wanted and proxy.name != wanted):
            continue
        lines += [
            _server_state_line(proxy.iid, backend.name, sid, server, uptime)
            for sid, server in enumerate(backend.servers, start=1)
        ]
    return "".join(lines)
