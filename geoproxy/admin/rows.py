"""The stats page's rows, from a fleet report: pure (no I/O, no clock: time is in the report).

Rules:
1. One row per FRONTEND, server and BACKEND, in HAProxy's order: proxy after proxy, each with
   its FRONTEND row, its servers, then its BACKEND row. Proxies come in the order asked for
   (the configuration's), then any other the fleet knows, by name.
2. Fields carry HAProxy's CSV column names (``qcur``, ``scur``, ``wretr``...); a figure that
   does not apply to a row is None (an empty CSV cell), as HAProxy leaves it.
3. Status words and colours are HAProxy's: ``UP``, ``DOWN``, ``DRAIN``, ``MAINT``, ``no
   check``, ``UP 1/3`` (going down), ``DOWN 1/2`` (going up); ``active_up``, ``maintain``...;
   a frontend is ``OPEN``, or ``PAUSED`` once disabled (``disable frontend``).
4. Figures are fleet-wide: every host's workers count into the same Redis keys.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from geoproxy.state.store import BackendReport, FleetReport, FrontendReport, ServerReport

_RUNNING = ("up", "going-down", "stopping")


class RowType(enum.Enum):
    """HAProxy's ``type`` column."""

    FRONTEND = 0
    BACKEND = 1
    SERVER = 2


Cell = int | str | None


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One line of the page; the fields up to ``mode`` are the CSV columns, in order."""

    pxname: str
    svname: str
    qcur: Cell = None
    qmax: Cell = None
    scur: Cell = None
    smax: Cell = None
    slim: Cell = None
    stot: Cell = None
    bin: Cell = None
    bout: Cell = None
    econ: Cell = None
    eresp: Cell = None
    wretr: Cell = None
    wredis: Cell = None
    status: Cell = None
    weight: Cell = None
    act: Cell = None
    bck: Cell = None
    chkfail: Cell = None
    chkdown: Cell = None
    lastchg: Cell = None
    downtime: Cell = None
    qlimit: Cell = None
    iid: Cell = None
    sid: Cell = None
    lbtot: Cell = None
    type: Cell = None
    rate: Cell = None
    rate_max: Cell = None
    check_status: Cell = None
    check_duration: Cell = None
    last_chk: Cell = None
    addr: Cell = None
    mode: Cell = "http"
    pid: Cell = 1  # HAProxy's process number: each geoproxy host is one process to a client
    check_desc: Cell = None
    check_rise: Cell = None
    check_fall: Cell = None
    check_health: Cell = None
    # for the HTML page only
    css: str = ""
    checked: bool = False  # the server has health checks (its check columns mean something)


# HAProxy 2.6's CSV columns, in its order (``show stat`` and ``;csv``): clients such as hatop
# read them by position. A column geoproxy has no figure for is an empty cell.
CSV_COLUMNS: tuple[str, ...] = tuple((
    "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,"
    "hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,"
    "cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,"
    "ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,"
    "check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,"
    "conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,"
    "srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,"
    "safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,"
    "agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,"
    "h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,"
    "h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,"
    "h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,"
    "h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,"
    "h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out"
).split(","))
# the columns a StatsRow fills (every other one is empty)
FILLED_COLUMNS = frozenset(f.name for f in fields(StatsRow)) & frozenset(CSV_COLUMNS)


@dataclass(frozen=True, slots=True)
class Proxy:
    """One proxy of the page: a frontend, a backend, or both (a ``listen`` section)."""

    name: str
    iid: int
    rows: tuple[StatsRow, ...]
    is_backend: bool


def server_status(server: ServerReport) -> str:
    """The server's status as HAProxy's page and CSV write it."""
    running = server.oper in _RUNNING
    if server.admin == "maint":
        return "MAINT"
    if server.admin == "drain" and running:
        return "DRAIN"
    if server.oper == "stopping":
        return "NOLB"
    if server.oper == "going-down":
        return f"UP {server.health - server.rise + 1}/{server.fall}"
    if server.oper == "going-up":
        return f"DOWN {server.health}/{server.rise}"
    if server.oper == "down":
        return "DOWN"
    return "UP" if server.checked else "no check"


def server_css(server: ServerReport, status: str) -> str:
    """HAProxy's row class: the colour of the state."""
    if status == "MAINT":
        return "maintain"
    side = "backup" if server.backup else "active"
    if status == "DRAIN":
        return f"{side}_draining"
    if status == "no check":
        return f"{side}_no_check"
    if status == "NOLB":
        return f"{side}_nolb"
    return f"{side}_{server.oper.replace('-', '_') or 'up'}"


def _seconds(value: float | None) -> int | None:
    return None if value is None else int(value)


def server_row(backend: str, iid: int, sid: int, server: ServerReport) -> StatsRow:
    status = server_status(server)
    return StatsRow(
        pxname=backend,
        svname=server.name,
        qcur=server.queued,
        qmax=server.max_queued,
        scur=server.inflight,
        smax=server.max_inflight,
        slim=server.maxconn or None,
        stot=server.total,
        bin=server.bytes_in,
        bout=server.bytes_out,
        econ=server.err_conn,
        eresp=server.err_resp,
        wretr=server.retries,
        wredis=server.redispatches,
        status=status,
        weight=server.weight,
        act=0 if server.backup else 1,
        bck=1 if server.backup else 0,
        chkfail=server.check_failures if server.checked else None,
        chkdown=server.downs if server.checked else None,
        lastchg=_seconds(server.since_change),
        downtime=int(server.downtime) if server.checked else None,
        qlimit=server.maxqueue or None,
        iid=iid,
        sid=sid,
        lbtot=server.total,
        type=RowType.SERVER.value,
        rate=server.rate,
        rate_max=server.rate_max,
        check_status=server.check.split(" ", 1)[0] if server.check else None,
        check_duration=server.check_ms if server.check_ms is not None and server.checked else None,
        last_chk=server.check.split(" ", 1)[1] if " " in server.check else None,
        addr=server.address,
        check_desc=(server.check.split(" ", 1)[1]
                    if server.checked and " " in server.check else None),
        check_rise=server.rise if server.checked else None,
        check_fall=server.fall if server.checked else None,
        check_health=server.health if server.checked else None,
        css=server_css(server, status),
        checked=server.checked,
    )


def backend_row(iid: int, backend: BackendReport, applet: bool = False) -> StatsRow:
    """``applet``: the backend half of a listener that serves the page itself, UP as in
    HAProxy (the page is its server)."""
    servers = backend.servers
    usable = [s for s in servers if s.oper in _RUNNING[:2] and s.admin == "ready"]
    primaries = [s for s in usable if not s.backup]
    return StatsRow(
        pxname=backend.name,
        svname="BACKEND",
        qcur=backend.queued,
        qmax=backend.max_queued,
        scur=sum(s.inflight for s in servers),
        smax=backend.max_inflight,
        stot=sum(s.total for s in servers),
        bin=sum(s.bytes_in for s in servers),
        bout=sum(s.bytes_out for s in servers),
        econ=sum(s.err_conn for s in servers),
        eresp=sum(s.err_resp for s in servers),
        wretr=sum(s.retries for s in servers),
        wredis=sum(s.redispatches for s in servers),
        status="UP" if usable or applet else "DOWN",
        weight=sum(s.weight for s in (primaries or usable)),
        act=len(primaries),
        bck=len(usable) - len(primaries),
        iid=iid,
        sid=0,
        lbtot=sum(s.total for s in servers),
        type=RowType.BACKEND.value,
        rate=backend.rate,
        rate_max=backend.rate_max,
        css="backend",
    )


def frontend_row(iid: int, frontend: FrontendReport) -> StatsRow:
    return StatsRow(
        pxname=frontend.name,
        svname="FRONTEND",
        stot=frontend.sessions,
        bin=frontend.bytes_in,
        bout=frontend.bytes_out,
        status="PAUSED" if frontend.paused else "OPEN",
        iid=iid,
        sid=0,
        type=RowType.FRONTEND.value,
        rate=frontend.rate,
        css="frontend",
    )


def proxies(
    report: FleetReport,
    order: Sequence[str] = (),
    scopes: Sequence[str] = (),
    applets: Sequence[str] = (),
    tcp: Sequence[str] = (),
) -> list[Proxy]:
    """Every proxy of the fleet as the page lists it (module rules); ``order`` names come
    first, ``scopes``, when given, keeps only those proxies, ``applets`` names the
    listeners that serve nothing but the page, and ``tcp`` the ``mode tcp`` proxies."""
    backends = {backend.name: backend for backend in report.backends}
    frontends = {front.name: front for front in report.frontends}
    names = list(dict.fromkeys([n for n in order if n in backends or n in frontends]))
    names += sorted((set(backends) | set(frontends)) - set(names))
    if scopes:
        names = [name for name in names if name in scopes]
    listed = []
    for iid, name in enumerate(names, start=1):
        rows: list[StatsRow] = []
        if name in frontends:
            rows.append(frontend_row(iid, frontends[name]))
        backend = backends.get(name)
        if backend is not None:
            rows += [server_row(name, iid, sid, s) for sid, s in enumerate(backend.servers, 1)]
            rows.append(backend_row(iid, backend, applet=name in applets))
        if name in tcp:
            rows = [replace(row, mode="tcp") for row in rows]
        listed.append(Proxy(name, iid, tuple(rows), backend is not None))
    return listed


def with_frontends(report: FleetReport, names: Sequence[str]) -> FleetReport:
    """``report`` with a zero row for every frontend in ``names`` that sent no traffic yet
    (frontends have no keys of their own in Redis)."""
    known = {front.name for front in report.frontends}
    missing = tuple(FrontendReport(name) for name in names if name not in known)
    if not missing:
        return report
    return FleetReport(report.backends, report.frontends + missing, report.workers, report.now_ms)
