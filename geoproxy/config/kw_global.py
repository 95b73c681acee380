"""The ``global`` section: ``maxconn``, ``tune.bufsize``, ``tune.http.maxhdr``, ``tune.h2.*``,
``log``, ``stats socket`` and ``stats timeout`` (``kw_stats_socket.py``), the TLS keywords
(``crt-base``, ``ca-base``, ``ssl-default-bind-*``, ``ssl-server-verify``: ``kw_ssl.py``),
``external-check`` (which ``option external-check`` requires: ``kw_external_check.py``), and
geoproxy's own ``redis-url`` and ``workers``.

HAProxy's process-level keywords are ignored with a warning or refused (see ``ignored.py``).
``default-path config`` is accepted silently because it is what geoproxy always does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from geoproxy.config.context import Keyword, Line
from geoproxy.config.kw_log import log_target
from geoproxy.config.kw_ssl import GLOBAL_TLS_KEYWORDS, parse_global
from geoproxy.config.kw_stats_socket import StatsDraft, parse_global_stats
from geoproxy.config.model import (
    DEFAULT_BUFSIZE,
    DEFAULT_MAXHDR,
    GlobalSettings,
    H2Settings,
    LogTarget,
)
from geoproxy.config.tls_draft import TlsGlobalsDraft

# The URL forms geoproxy/state/connect.py reads (a single server, Sentinel, Cluster).
_REDIS_SCHEMES = (
    "redis://",
    "rediss://",
    "unix://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
)


@dataclass(slots=True)
class GlobalDraft:
    maxconn: int = 0
    redis_url: str | None = None
    workers: int | None = None
    logs: list[LogTarget] = field(default_factory=list)
    bufsize: int = DEFAULT_BUFSIZE
    maxhdr: int = DEFAULT_MAXHDR
    stats: StatsDraft = field(default_factory=StatsDraft)
    h2: H2Settings = field(default_factory=H2Settings)
    tls: TlsGlobalsDraft = field(default_factory=TlsGlobalsDraft)
    external_check: bool = False

    def freeze(self) -> GlobalSettings:
        return GlobalSettings(
            self.maxconn, self.redis_url, self.workers, tuple(self.logs), self.bufsize,
            self.maxhdr, tuple(self.stats.sockets), self.stats.timeout, self.h2,
            self.external_check,
        )


def integer(line: Line, index: int, name: str, minimum: int = 0) -> int:
    """The integer argument at ``index``; HAProxy's "'NAME' expects an integer argument."."""
    text = line.arg(index)
    if not text.isdigit() or int(text) < minimum:
        suffix = f" of at least {minimum}" if minimum > 0 else ""
        got = f" (got '{text}')" if text else ""
        line.fail(f"'{name}' expects an integer argument{suffix}{got}.")
    return int(text)


def _maxconn(draft: GlobalDraft, line: Line) -> None:
    draft.maxconn = integer(line, 0, "maxconn")
    line.at_most(1)


def _redis_url(draft: GlobalDraft, line: Line) -> None:
    url = line.arg(0)
    if not url.startswith(_REDIS_SCHEMES):
        got = f", got '{url}'" if url else ""
        line.fail(
            f"'redis-url' expects a URL starting with redis://, rediss://, unix://, "
            f"redis+sentinel:// or redis+cluster://{got}."
        )
    line.at_most(1)
    draft.redis_url = url


def _workers(draft: GlobalDraft, line: Line) -> None:
    draft.workers = integer(line, 0, "workers", minimum=1)
    line.at_most(1)


def _bufsize(draft: GlobalDraft, line: Line) -> None:
    text = line.arg(0)
    if not text:
        line.fail("'tune.bufsize' expects an integer argument.")
    if not text.isdigit() or int(text) <= 0:
        line.fail(f"'tune.bufsize' expects a positive integer argument (got '{text}').")
    line.at_most(1)
    # HAProxy rounds it up to a two-pointer alignment; geoproxy keeps the same figure
    draft.bufsize = (int(text) + 15) & -16


def _maxhdr(draft: GlobalDraft, line: Line) -> None:
    text = line.arg(0)
    if not text.isdigit() or not 1 <= int(text) <= 32767:
        got = f" (got '{text}')" if text else ""
        line.fail(f"'tune.http.maxhdr' expects a numeric value between 1 and 32767{got}.")
    line.at_most(1)
    draft.maxhdr = int(text)


# tune.h2.* -> (H2Settings field, least value, greatest value), HAProxy 2.6's bounds
_H2_TUNING: dict[str, tuple[str, int, int]] = {
    "tune.h2.header-table-size": ("header_table_size", 0, 65536),
    "tune.h2.initial-window-size": ("initial_window_size", 0, 2**31 - 1),
    "tune.h2.max-concurrent-streams": ("max_concurrent_streams", 1, 2**31 - 1),
    "tune.h2.max-frame-size": ("max_frame_size", 16384, 2**24 - 1),
}


def _h2_tuning(draft: GlobalDraft, line: Line) -> None:
    name, least, greatest = _H2_TUNING[line.keyword]
    text = line.arg(0)
    if not text.isdigit() or not least <= int(text) <= greatest:
        got = f" (got '{text}')" if text else ""
        line.fail(f"'{line.keyword}' expects a numeric value between {least} and "
                  f"{greatest}{got}.")
    line.at_most(1)
    draft.h2 = dataclasses.replace(draft.h2, **{name: int(text)})


def _log(draft: GlobalDraft, line: Line) -> None:
    if line.prefix == "no":
        draft.logs.clear()
        return
    draft.logs.append(log_target(line))


def _default_path(draft: GlobalDraft, line: Line) -> None:
    if line.arg(0) != "config" or len(line.args) > 1:
        line.fail("'default-path' : geoproxy always resolves relative paths against the "
                  "configuration file's directory; only 'default-path config' is accepted.")


def _external_check(draft: GlobalDraft, line: Line) -> None:
    """``external-check``: backends may run ``option external-check`` commands."""
    if line.args:
        line.fail(f"'external-check' cannot handle unexpected argument '{line.arg(0)}'.")
    draft.external_check = True


GLOBAL_KEYWORDS: dict[str, Keyword[GlobalDraft]] = {
    "maxconn": Keyword(_maxconn),  # the most concurrent client connections
    "redis-url": Keyword(_redis_url),  # the Redis every worker and host shares
    "workers": Keyword(_workers),  # gunicorn worker processes
    "default-path": Keyword(_default_path),
    "external-check": Keyword(_external_check),  # allows `option external-check`
    "log": Keyword(_log),  # where request and health lines go
    "tune.bufsize": Keyword(_bufsize),  # a request head fits in it, less 1024 bytes (414, 431)
    "tune.http.maxhdr": Keyword(_maxhdr),  # at most this many lines in a request head (431)
    # the SETTINGS announced to HTTP/2 clients (geoproxy.runtime.h2_connection)
    **{keyword: Keyword(_h2_tuning) for keyword in _H2_TUNING},
    "stats": Keyword(lambda draft, line: parse_global_stats(draft.stats, line)),  # Runtime API
    # TLS: crt-base, ca-base, ssl-default-bind-*, ssl-server-verify (kw_ssl.py)
    **{name: Keyword(lambda draft, line: parse_global(draft.tls, line))
       for name in GLOBAL_TLS_KEYWORDS},
}
