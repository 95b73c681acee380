"""``log``: where request and health lines go, as HAProxy reads it (global and proxies).

``log ADDRESS [len N] [format F] [sample R:N] FACILITY [LEVEL [MINLEVEL]]`` in ``global`` and in
proxies, ``log global`` in proxies (use the global targets), ``no log`` (none). ``format`` and
``len`` are read and accepted (geoproxy always writes HAProxy's rfc3164 shape); ``sample``
is refused (geoproxy logs every request).
"""

from __future__ import annotations

from geoproxy.config.context import Line
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import LogTarget

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
)  # fmt: skip
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_FORMATS = ("local", "rfc3164", "rfc5424", "priority", "short", "timed", "iso", "raw")


def log_target(line: Line) -> LogTarget:
    """The target of one ``log`` line (not ``log global``)."""
    args = list(line.args)
    if not args:
        line.fail("'log' expects either <address[:port]> and <facility> or 'global' as arguments.")
    address = args.pop(0)
    while args and args[0] in ("len", "format", "sample"):
        option = args.pop(0)
        value = args.pop(0) if args else ""
        if option == "len" and not value.isdigit():
            line.fail(f"'log' : 'len' expects a positive integer, got '{value}'.")
        if option == "format" and value not in _FORMATS:
            line.fail(f"'log' : unknown log format '{value}'.")
        if option == "sample":
            line.fail("'log' : 'sample' is not supported by geoproxy (it logs every request).")
    if not args or args[0] not in FACILITIES:
        got = f" '{args[0]}'" if args else ""
        line.fail(f"'log' : unknown facility{got}, expected one of {', '.join(FACILITIES)}.")
    facility = args.pop(0)
    level = None
    if args:
        if args[0] not in LEVELS:
            line.fail(f"'log' : unknown optional log level '{args[0]}'.")
        level = args.pop(0)
    if args and args[0] in LEVELS:
        args.pop(0)  # minimum level: every request line is 'info'
    if args:
        line.fail(f"'log' : unexpected argument '{args[0]}'.")
    return LogTarget(address, facility, level, line.location)


def parse_log(proxy: ProxyDraft, line: Line) -> None:
    """``log global``, ``log TARGET...`` or ``no log`` in a proxy section."""
    settings = proxy.settings
    if line.prefix == "no":
        settings.log_global = False
        settings.logs = []
        return
    if line.arg(0) == "global":
        line.at_most(1)
        settings.log_global = True
        return
    settings.logs.append(log_target(line))
