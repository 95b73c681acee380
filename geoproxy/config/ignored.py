"""HAProxy keywords geoproxy accepts but does not act on, and those it refuses by name.

Rules:
1. A keyword is *ignored* (one warning naming file:line and the keyword, then nothing) only
   when leaving it out cannot change where a request goes or what the client receives:
   process management, logging, TLS material for listeners geoproxy does not have, tuning.
2. A keyword HAProxy knows that would change traffic and that geoproxy does not implement is
   *refused* with an error that says so, never silently dropped.
3. Anything in neither list is unknown: an error that lists what the section supports.
"""

from __future__ import annotations

_PROCESS = "process management belongs to gunicorn and geoproxy's command line"
_LOGGING = "logging is configured on geoproxy's command line"
_TUNING = "HAProxy's tuning does not apply to geoproxy"
_NOTHING = "it has no effect on traffic in geoproxy"
# HAProxy 2.6 keeps the keyword and does nothing with it: Proxy-Connection is forwarded unread,
# and keep-alive follows Connection alone, with or without the option (checked against 2.6.12)
_INERT_IN_26 = "HAProxy 2.6 accepts it and does nothing with it either"

# keyword -> reason, for the global section
GLOBAL_IGNORED: dict[str, str] = {
    **dict.fromkeys(("daemon", "master-worker", "user", "group", "uid", "gid", "chroot",
                     "pidfile", "nbthread", "cpu-map", "thread-groups", "ulimit-n",
                     "quiet", "localpeer", "hard-stop-after", "grace", "set-dumpable",
                     "insecure-fork-wanted", "insecure-setuid-wanted", "node", "description",
                     "expose-experimental-directives", "zero-warning", "strict-limits",
                     "mworker-max-reloads", "numa-cpu-mapping", "server-state-base",
                     "server-state-file"), _PROCESS),
    **dict.fromkeys(("log-tag", "log-send-hostname", "log-format"), _LOGGING),
    "ssl-engine": "TLS runs in OpenSSL's default engine",
    "ssl-mode-async": "TLS runs in OpenSSL's default engine",
    "ssl-load-extra-files": "geoproxy reads a certificate's key from FILE.key when the PEM "
                            "has none, and no other extra file",
    **dict.fromkeys(("maxsslconn", "maxsslrate", "maxpipes", "spread-checks",
                     "max-spread-checks", "busy-polling", "noepoll", "nokqueue", "noevports",
                     "nopoll", "nosplice", "nogetaddrinfo", "noreuseport", "profiling.tasks",
                     "profiling.memory", "h1-case-adjust", "h1-case-adjust-file"), _TUNING),
    **dict.fromkeys(("maxcomprate", "maxcompcpuusage", "maxzlibmem"),
                    "geoproxy compresses what the compression rules select, whatever the load"),
}
# prefixes of whole keyword families ignored in the global section
GLOBAL_IGNORED_PREFIXES: dict[str, str] = {"tune.": _TUNING}

GLOBAL_REFUSED: dict[str, str] = {
    **dict.fromkeys(("ssl-default-bind-sigalgs", "ssl-default-bind-client-sigalgs",
                     "ssl-default-server-sigalgs", "ssl-default-server-client-sigalgs"),
                    "geoproxy does not set signature algorithms"),
    "nbproc": "HAProxy 2.5 and later refuse it too (threads replaced processes; geoproxy's "
              "worker processes are set with --workers or 'workers N')",
    **dict.fromkeys(("maxconnrate", "maxsessrate"),
                    "it caps new connections per second and geoproxy does not implement it"),
    **dict.fromkeys(("setenv", "presetenv", "resetenv", "unsetenv"),
                    "set the variable in geoproxy's environment instead"),
    "lua-load": "geoproxy does not run Lua",
    "lua-prepend-path": "geoproxy does not run Lua",
    "lua-load-per-thread": "geoproxy does not run Lua",
}

# keyword -> reason, for proxy sections (defaults, frontend, backend, listen)
PROXY_IGNORED: dict[str, str] = {
    **dict.fromkeys(("log-tag", "log-format-sd", "error-log-format"), _LOGGING),
    **dict.fromkeys(("description", "id", "backlog", "fullconn",
                     "max-keep-alive-queue", "email-alert", "bind-process",
                     "clitcpka-cnt", "clitcpka-idle", "clitcpka-intvl", "srvtcpka-cnt",
                     "srvtcpka-idle", "srvtcpka-intvl", "max-session-srv-conns"), _NOTHING),
}

# keywords whose job geoproxy does another way
PROXY_IGNORED.update(dict.fromkeys(
    ("load-server-state-from-file", "server-state-file-name"),
    "server states survive restarts and reloads in Redis"))

PROXY_REFUSED: dict[str, str] = {
    "rate-limit": "it caps new sessions per second and geoproxy does not implement it",
    **dict.fromkeys(("tcp-response", "use-server", "http-error",
                     "errorloc", "errorloc302", "errorloc303", "filter", "use-fcgi-app",
                     "retry-on", "hash-balance-factor", "dispatch", "source", "transparent",
                     "persist",
                     "http-send-name-header", "disabled", "enabled"),
                    "it changes traffic and geoproxy does not implement it"),
}

# `option` names: ignored ones, refused ones (supported ones live with their parsers)
OPTION_IGNORED: dict[str, str] = {
    **dict.fromkeys(("httpslog", "dontlog-normal", "log-separate-errors", "logasap",
                     "log-health-checks", "contstats", "socket-stats"), _LOGGING),
    **dict.fromkeys(("tcpka", "clitcpka", "srvtcpka", "tcp-smart-accept",
                     "tcp-smart-connect", "splice-auto", "splice-request", "splice-response",
                     "http-no-delay", "independent-streams", "nolinger", "http-ignore-probes",
                     "idle-close-on-response", "disable-h2-upgrade"), _NOTHING),
    "http-use-proxy-header": _INERT_IN_26,
}
OPTION_REFUSED = frozenset({
    "accept-invalid-http-request", "accept-invalid-http-response",
    "checkcache", "http-pretend-keepalive", "prefer-last-server",
    "transparent", "forwarded", "spop-check",
    "http-restrict-req-hdr-names", "h1-case-adjust-bogus-client",
    "h1-case-adjust-bogus-server", "forceclose", "http-tunnel", "http_proxy",
})


def global_ignored_reason(keyword: str) -> str | None:
    """Why a global keyword is ignored, or None when it is not."""
    if keyword in GLOBAL_IGNORED:
        return GLOBAL_IGNORED[keyword]
    for prefix, reason in GLOBAL_IGNORED_PREFIXES.items():
        if keyword.startswith(prefix):
            return reason
    return None
