"""``stats ...`` in the ``global`` section: ``stats socket`` (HAProxy's Runtime API, served by
every ``geoproxy run`` host on its own socket) and ``stats timeout``.

Rules:
1. ``stats socket PATH|[unix@]PATH|ipv4@ADDR:PORT|ADDR:PORT [mode M] [user U] [group G] [uid N]
   [gid N] [level user|operator|admin]``; several may be declared. ``level`` defaults to
   ``operator``, as in HAProxy 2.6.
2. Bind options that only matter to HAProxy's processes (``expose-fd``, ``process``,
   ``thread``, ``severity-output``, ``accept-netscaler-cip``...) are ignored with a warning; an
   unknown option is an error, as HAProxy refuses it.
3. ``stats maxconn`` and ``stats bind-process`` are ignored with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geoproxy.config.address import AddressError, parse_bind
from geoproxy.config.context import Line
from geoproxy.config.model import StatsSocket
from geoproxy.config.units import TimeUnit, UnitError, parse_time

LEVELS = ("user", "operator", "admin")
_IGNORED_OPTIONS = {"expose-fd": 1, "process": 1, "thread": 1, "severity-output": 1,
                    "name": 1, "nice": 1, "id": 1, "maxconn": 1, "backlog": 1}


@dataclass(slots=True)
class StatsDraft:
    sockets: list[StatsSocket] = field(default_factory=list)
    timeout: float = 10.0


def parse_global_stats(draft: StatsDraft, line: Line) -> None:
    sub = line.arg(0)
    if sub == "socket":
        draft.sockets.append(_socket(line))
    elif sub == "timeout":
        try:
            draft.timeout = parse_time(line.arg(1), TimeUnit.MS)
        except UnitError as error:
            line.fail(error.describe("stats timeout"))
        line.at_most(2, "stats timeout")
    elif sub in ("maxconn", "bind-process"):
        line.warn(f"'stats {sub}' is ignored by geoproxy (each Runtime API connection is "
                  "served by a thread of the host's master).")
    else:
        line.fail("'stats' expects 'socket', 'maxconn', 'timeout' or 'bind-process'.")


def _socket(line: Line) -> StatsSocket:
    address = line.arg(1)
    if not address:
        line.fail("'stats socket' in global section expects an address or a path to a UNIX "
                  "socket.")
    path, host, port = "", "", 0
    if address.startswith("unix@"):
        path = address[len("unix@"):]
    elif address.startswith("/") or address.startswith("./") or ":" not in address:
        path = address
    else:
        try:
            [(host, port)] = parse_bind(address)
        except (AddressError, ValueError) as error:
            line.fail(f"'stats socket' : {error}")
    options: dict[str, str | None] = {"mode": None, "user": None, "group": None,
                                      "level": "operator"}
    words = list(line.args[2:])
    while words:
        name = words.pop(0)
        if name in _IGNORED_OPTIONS:
            if words:
                words.pop(0)
            line.warn(f"'stats socket' option '{name}' is ignored by geoproxy.")
            continue
        if name not in ("mode", "user", "group", "uid", "gid", "level"):
            line.fail(f"'stats socket' : unknown keyword '{name}'. Registered keywords : "
                      "mode, user, group, uid, gid, level.")
        if not words:
            line.fail(f"'stats socket' : missing argument to '{name}'.")
        value = words.pop(0)
        if name == "level" and value not in LEVELS:
            line.fail("'level' only supports 'user', 'operator', and 'admin'")
        if name == "mode":
            try:
                int(value, 8)
            except ValueError:
                line.fail(f"'stats socket' : 'mode' expects an octal value, got '{value}'.")
        options[{"uid": "user", "gid": "group"}.get(name, name)] = value
    mode = options["mode"]
    return StatsSocket(
        location=line.location,
        path=path,
        host=host,
        port=port,
        mode=int(mode, 8) if mode is not None else None,
        user=options["user"],
        group=options["group"],
        level=options["level"] or "operator",
    )
