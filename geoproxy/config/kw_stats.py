"""``stats ...`` in proxy sections: the statistics page (HAProxy's ``uri_auth``).

Rules (HAProxy 2.6's ``cfgparse-listen.c``, messages checked with ``haproxy -c``):
1. Any ``stats`` keyword but ``stats admin`` enables the page with HAProxy's defaults
   (``/haproxy?stats``, realm ``HAProxy Statistics``, no authentication); a ``defaults``
   section's settings are inherited by the proxies after it.
2. ``stats admin`` needs ``if`` or ``unless`` and a condition; it is refused in ``defaults``.
   Several lines: admin rights when any of their conditions holds.
3. ``stats auth USER:PASSWORD`` may be repeated; the password is what follows the first colon.
4. In a backend, the page is served to the requests routed there (HAProxy's meaning).
5. ``stats show-node``, ``show-desc``, ``show-legends`` only change the page's decorations:
   accepted with a warning. ``stats http-request`` changes who gets in: refused.
6. ``stats metrics-uri PATH`` is geoproxy's own: where Prometheus scrapes.
"""

from __future__ import annotations

from geoproxy.config.acl import AclError
from geoproxy.config.context import Line
from geoproxy.config.draft import ProxyDraft, ProxyKind, StatsDraft
from geoproxy.config.kw_proxy import condition
from geoproxy.config.model import StatsAuth
from geoproxy.config.units import UnitError, parse_time

_EXPECTS = (
    "expects 'admin', 'uri', 'realm', 'auth', 'scope', 'enable', 'hide-version', "
    "'show-node', 'show-desc' or 'show-legends'."
)
_DECORATIONS = frozenset({"show-node", "show-desc", "show-legends"})


def parse_stats(proxy: ProxyDraft, line: Line) -> None:
    sub = line.arg(0)
    if not sub:
        line.fail(f"missing keyword in 'stats', {_EXPECTS}")
    if sub == "admin":
        _admin(proxy, line)
        return
    if sub == "http-request":
        line.fail("'stats http-request' is not supported by geoproxy: it changes who may see "
                  "the page; use 'stats auth' and 'stats admin' instead.")
    handler = _SETTERS.get(sub)
    if handler is None and sub not in _DECORATIONS:
        line.fail(f"unknown stats parameter '{sub}', {_EXPECTS}")
    stats = _enabled(proxy, line)
    if handler is not None:
        handler(stats, line)
    else:
        line.warn(f"'stats {sub}' is ignored by geoproxy (the page has no such decoration).")


def _enabled(proxy: ProxyDraft, line: Line) -> StatsDraft:
    settings = proxy.settings
    if settings.stats is None:
        settings.stats = StatsDraft(line.location)
    return settings.stats


def _admin(proxy: ProxyDraft, line: Line) -> None:
    if proxy.kind is ProxyKind.DEFAULTS:
        line.fail("'stats admin' not allowed in 'defaults' section.")
    if line.arg(1) not in ("if", "unless"):
        line.fail("'stats admin' requires either 'if' or 'unless' followed by a condition.")
    try:
        rule = condition(proxy, line, 1)
    except AclError as exc:
        line.fail(f"error detected while parsing a 'stats admin' rule : {exc}.")
    _enabled(proxy, line)
    proxy.rules.stats_admin.append(rule)


def _uri(stats: StatsDraft, line: Line) -> None:
    if not line.arg(1):
        line.fail("'uri' needs an URI prefix.")
    stats.uri = line.arg(1)


def _realm(stats: StatsDraft, line: Line) -> None:
    if not line.arg(1):
        line.fail("'realm' needs an realm name.")
    stats.realm = line.arg(1)


def _auth(stats: StatsDraft, line: Line) -> None:
    account = line.arg(1)
    if not account:
        line.fail("'auth' needs a user:password account.")
    user, _, password = account.partition(":")
    stats.auths.append(StatsAuth(user, password))


def _refresh(stats: StatsDraft, line: Line) -> None:
    text = line.arg(1)
    if not text:
        line.fail("'refresh' needs a refresh interval.")
    try:
        stats.refresh = parse_time(text)
    except UnitError as exc:
        if exc.character is None:
            line.fail(exc.describe("stats refresh"))
        line.fail(f"unexpected character '{exc.character}' in argument to stats refresh "
                  "interval.")


def _scope(stats: StatsDraft, line: Line) -> None:
    if not line.arg(1):
        line.fail("'scope' needs a proxy name.")
    stats.scopes.append(line.arg(1))


def _hide_version(stats: StatsDraft, line: Line) -> None:
    stats.hide_version = True


def _metrics_uri(stats: StatsDraft, line: Line) -> None:
    path = line.arg(1)
    if not path.startswith("/"):
        line.fail("'metrics-uri' needs a path beginning with '/'.")
    stats.metrics_uri = path


def _enable(stats: StatsDraft, line: Line) -> None:
    """Nothing more than what ``_enabled`` did."""


_SETTERS = {
    "enable": _enable,
    "uri": _uri,
    "realm": _realm,
    "auth": _auth,
    "refresh": _refresh,
    "scope": _scope,
    "hide-version": _hide_version,
    "metrics-uri": _metrics_uri,
}
