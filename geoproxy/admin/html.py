"""The stats page as HTML: HAProxy's layout and colours, one table per proxy, no JavaScript.

Rules:
1. Every value that comes from Redis or the configuration is escaped: server and backend
   names reach the page from any host of the fleet.
2. Admin users get HAProxy's form per backend: a checkbox per server (``s``), the backend
   (``b``) and the ``action`` (``ready``, ``drain``, ``maint``; geoproxy adds ``weight`` with
   a ``weight`` field), posted to the stats URI.
3. The page needs nothing but itself: styles inline, no script, no external resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from geoproxy.admin.rows import Proxy, StatsRow

ACTIONS = (
    ("ready", "Set state to READY"),
    ("drain", "Set state to DRAIN"),
    ("maint", "Set state to MAINT"),
    ("weight", "Set weight to"),
)

# what HAProxy's page says for each ";st=" code after an admin action
STATUS_MESSAGES = {
    "DONE": ("active_up", "Action processed successfully."),
    "NONE": ("active_going_down", "Nothing has changed."),
    "PART": ("active_going_down", "Action partially processed."),
    "ERRP": ("active_down", "Action not processed because of invalid parameters."),
    "DENY": ("active_down", "Action denied."),
    "UNKN": ("active_down", "Unexpected result."),
}

_STYLE = """
body { font-family: arial, helvetica, sans-serif; font-size: 12px; color: black;
  background: white; }
th, td { font-size: 10px; }
h1 { font-size: x-large; margin-bottom: 0.5em; }
h3 { font-size: 16px; font-weight: bold; color: #b00040; background: #e8e8d0; margin: 0; }
.titre { background: #20D0D0; color: #000000; font-weight: bold; text-align: center; }
.frontend { background: #e8e8d0; }
.backend { background: #e8e8d0; }
.active_down { background: #ff9090; }
.active_going_up { background: #ffd020; }
.active_going_down { background: #ffffa0; }
.active_up { background: #c0ffc0; }
.active_draining { background: #20a0ff; }
.active_no_check { background: #e0e0e0; }
.active_nolb, .backup_nolb { background: #20a0ff; }
.backup_down { background: #ff9090; }
.backup_going_up { background: #ff80ff; }
.backup_going_down { background: #c060ff; }
.backup_up { background: #b0d0ff; }
.backup_draining { background: #cc9900; }
.backup_no_check { background: #e0e0e0; }
.maintain { background: #c07820; }
table.tbl { border-collapse: collapse; border-style: none; margin-bottom: 1em; }
table.tbl td { text-align: right; border: 1px solid gray; padding: 2px 3px;
  white-space: nowrap; }
table.tbl td.ac { text-align: center; }
table.tbl td.al { text-align: left; }
table.tbl th { border: 1px solid gray; padding: 2px 3px; }
table.tbl th.pxname { background: #b00040; color: #ffff40; font-weight: bold;
  text-align: left; }
table.lgd td { border: 1px solid gray; padding: 2px; }
div.msg { padding: 4px; margin: 0.5em 0; border: 1px solid gray; }
"""

_GROUPS = (("Queue", 3), ("Session rate", 2), ("Sessions", 5), ("Bytes", 2), ("Errors", 2),
           ("Warnings", 2), ("Server", 8))
_HEADS = ("Cur", "Max", "Limit", "Cur", "Max", "Cur", "Max", "Limit", "Total", "LbTot", "In",
          "Out", "Conn", "Resp", "Retr", "Redis", "Status", "LastChk", "Wght", "Act", "Bck",
          "Chk", "Dwn", "Dwntme")


@dataclass(frozen=True, slots=True)
class Page:
    """Everything one rendering needs. ``hosts`` are (host, live workers); ``status`` is the
    ``;st=`` code of the admin action just done, if any."""

    proxies: Sequence[Proxy]
    uri: str
    hosts: Sequence[tuple[str, int]]
    admin: bool
    refresh: float | None
    version: str | None
    status: str | None = None


def duration(seconds: int | float | None) -> str:
    """HAProxy's short human durations: ``12s``, ``3m04s``, ``2h10m``, ``1d3h``."""
    if seconds is None:
        return ""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _text(value: object) -> str:
    return "" if value is None else escape(str(value))


def _cells(row: StatsRow) -> list[str]:
    """The 24 figures of a row, in ``_HEADS`` order, as table cells."""
    status = _text(row.status)
    if row.type == 2 and isinstance(row.lastchg, int):
        status = f"{duration(row.lastchg)} {status}"
    last_chk = ""
    if row.check_status is not None:
        took = f" in {row.check_duration}ms" if row.check_duration is not None else ""
        last_chk = f'<span title="{_text(row.last_chk)}">{_text(row.check_status)}{took}</span>'
    figures = [row.qcur, row.qmax, row.qlimit, row.rate, row.rate_max, row.scur, row.smax,
               row.slim, row.stot, row.lbtot, row.bin, row.bout, row.econ, row.eresp, row.wretr,
               row.wredis]
    cells = [f"<td>{_text(value)}</td>" for value in figures]
    cells += [f'<td class="ac">{status}</td>', f'<td class="al">{last_chk}</td>']
    for value in (row.weight, row.act, row.bck, row.chkfail, row.chkdown):
        cells.append(f'<td class="ac">{_text(value)}</td>')
    downtime = duration(row.downtime) if isinstance(row.downtime, int) else ""
    cells.append(f"<td>{downtime}</td>")
    return cells


def _row(row: StatsRow, with_box: bool) -> str:
    box = ""
    if with_box:
        box = "<td></td>"
        if row.type == 2:
            name = _text(row.svname)
            box = (f'<td><input type="checkbox" name="s" value="{name}" '
                   f'aria-label="select {name}"></td>')
    ident = f' id="{_text(row.pxname)}/{_text(row.svname)}"'
    return (f'<tr class="{row.css}"{ident}>{box}<td class="al">{_text(row.svname)}</td>'
            + "".join(_cells(row)) + "</tr>")


def _table(proxy: Proxy, admin: bool, uri: str) -> str:
    with_box = admin and any(row.type == 2 for row in proxy.rows)
    first = '<th rowspan="2"></th>' if with_box else ""
    width = 2 + len(_HEADS) if with_box else 1 + len(_HEADS)
    groups = "".join(f'<th colspan="{span}">{name}</th>' for name, span in _GROUPS)
    heads = "".join(f"<th>{head}</th>" for head in _HEADS)
    lines = [
        f'<table class="tbl" id="px-{_text(proxy.name)}">',
        f'<tr><th class="pxname" colspan="{width}">{_text(proxy.name)}</th></tr>',
        f'<tr class="titre">{first}<th rowspan="2"></th>{groups}</tr>',
        f'<tr class="titre">{heads}</tr>',
    ]
    lines += [_row(row, with_box) for row in proxy.rows]
    lines.append("</table>")
    if not with_box:
        return "\n".join(lines)
    options = "".join(f'<option value="{value}">{label}</option>' for value, label in ACTIONS)
    return "\n".join([
        f'<form method="post" action="{_text(uri)}" id="form-{_text(proxy.name)}">',
        *lines,
        '<p>Choose the action to perform on the checked servers : ',
        f'<select name="action"><option value=""></option>{options}</select> ',
        '<input type="number" name="weight" min="0" max="256" size="4" '
        'aria-label="weight"> ',
        f'<input type="hidden" name="b" value="{_text(proxy.name)}">',
        '<input type="submit" value="Apply"></p>',
        "</form>",
    ])


def _header(page: Page) -> str:
    hosts = ", ".join(f"{escape(host)} ({workers} workers)" for host, workers in page.hosts)
    version = f" version {escape(page.version)}" if page.version else ""
    lines = [
        f"<h1>geoproxy{version}</h1>",
        "<h3>Statistics Report for the whole fleet (every host, from Redis)</h3>",
        f'<p id="hosts">Live hosts: {hosts or "none"}</p>',
    ]
    if page.status in STATUS_MESSAGES:
        css, message = STATUS_MESSAGES[page.status]
        lines.append(f'<div class="msg {css}" id="status">{message} '
                     f'<a href="{_text(page.uri)}">[X]</a></div>')
    legend = "".join(f'<td class="{css}">{label}</td>' for css, label in (
        ("active_up", "active UP"), ("backup_up", "backup UP"),
        ("active_going_down", "active UP, going down"), ("active_going_up",
                                                         "active DOWN, going up"),
        ("active_down", "active or backup DOWN"), ("active_no_check", "not checked"),
        ("active_draining", "active DRAIN"), ("maintain", "MAINT")))
    lines.append(f'<table class="lgd"><tr>{legend}</tr></table>')
    return "\n".join(lines)


def render_html(page: Page) -> str:
    body = "\n".join(_table(proxy, page.admin, page.uri) for proxy in page.proxies)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        "<title>Statistics Report for geoproxy</title>"
        f"<style>{_STYLE}</style></head>\n<body>\n{_header(page)}\n{body}\n</body></html>\n"
    )
