"""The stats page as a WSGI app, served by the proxy's own workers on the frontends that enable
it (``stats enable``, ``stats uri`` ...), as HAProxy serves it.

Rules:
1. A request belongs to the page when its URI (path and query, as sent) starts with the stats
   URI, HAProxy's prefix match; what follows may carry HAProxy's options, ``;csv``,
   ``;norefresh`` and ``;st=CODE``. The metrics path is matched exactly.
2. With ``stats auth``, every request without valid credentials gets HAProxy's 401 and
   changes nothing, whatever its method (DESIGN.md invariant 7).
3. A POST is an admin action only for a user that ``stats admin`` admits; anyone else gets
   HAProxy's ``303`` to ``;st=DENY``. A POST whose ``Origin`` names another site is refused the
   same way: a browser's saved credentials must not serve a forged form.
4. Every figure is read from Redis at each request: any worker of any host shows the fleet.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from werkzeug.datastructures import Authorization
from werkzeug.wrappers import Request, Response

from geoproxy.admin import actions
from geoproxy.admin.csv import render_csv
from geoproxy.admin.html import Page, render_html
from geoproxy.admin.prometheus import CONTENT_TYPE, render_metrics
from geoproxy.admin.rows import Proxy, proxies, with_frontends
from geoproxy.config.model import StatsConfig
from geoproxy.proxy.acl import Predicate, compile_condition, request_path
from geoproxy.state.redis_store import REDIS_ERRORS
from geoproxy.state.store import FleetReport

Environ = dict[str, Any]

_UNAUTHORIZED = (
    b"<html><body><h1>401 Unauthorized</h1>\n"
    b"You need a valid user and password to access this content.\n</body></html>\n"
)
_MAX_FORM = 64 * 1024


def standard_status(code: int) -> str:
    """A WSGI status line with the standard reason phrase: ``401 Unauthorized``."""
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def request_uri(environ: Environ) -> str:
    """Path and query as the client sent them; an absolute-form URI loses scheme and host."""
    uri: str = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
    if not uri.startswith("/"):
        start = uri.find("://")
        if start >= 0:
            slash = uri.find("/", start + 3)
            uri = uri[slash:] if slash >= 0 else "/"
    return uri


@dataclass(frozen=True, slots=True)
class StatsSite:
    """What one frontend's page shows: ``name`` the frontend's, ``order`` the proxies in
    configuration order, ``frontends`` this host's frontends, ``version`` (None: hidden)."""

    name: str
    order: tuple[str, ...]
    frontends: tuple[str, ...]
    version: str | None
    metrics_uri: str | None
    applets: tuple[str, ...] = ()  # listeners serving only the page (their backend is UP)
    tcp: tuple[str, ...] = ()  # the mode tcp proxies (the CSV's mode column)


class StatsApp:
    """One frontend's stats page (module rules)."""

    def __init__(
        self, stats: StatsConfig, site: StatsSite, control: actions.FleetControl
    ) -> None:
        self._stats = stats
        self._site = site
        self._control = control
        self._admin: tuple[Predicate, ...] = tuple(compile_condition(c) for c in stats.admin)
        self._accounts = tuple((a.user.encode(), a.password.encode()) for a in stats.auths)
        self._scopes = tuple(site.name if scope == "." else scope for scope in stats.scopes)

    def serves(self, environ: Environ) -> bool:
        """Whether this request is for the page or the metrics (rule 1)."""
        metrics = self._site.metrics_uri
        if metrics is not None and request_path(environ) == metrics:
            return True
        return request_uri(environ).startswith(self._stats.uri)

    def __call__(self, environ: Environ, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = _MAX_FORM
        response = self._respond(request)
        # werkzeug upper-cases reason phrases ("401 UNAUTHORIZED"); HAProxy sends RFC 9110's
        response.status = standard_status(response.status_code)
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        if self._accounts and not self._authorized(request.authorization):
            return self._unauthorized()
        try:
            if self._site.metrics_uri is not None and request_path(
                request.environ
            ) == self._site.metrics_uri:
                return Response(render_metrics(self._report()), content_type=CONTENT_TYPE)
            options = request_uri(request.environ)[len(self._stats.uri) :].split(";")
            if request.method == "POST":
                return self._post(request)
            return self._page(request, options)
        except REDIS_ERRORS:
            return Response("the fleet's state is unreachable (Redis)\n", status=503,
                            content_type="text/plain", headers={"cache-control": "no-cache"})

    def _authorized(self, credentials: Authorization | None) -> bool:
        if credentials is None or credentials.type != "basic":
            return False
        user = (credentials.username or "").encode()
        password = (credentials.password or "").encode()
        matches = [hmac.compare_digest(user, u) & hmac.compare_digest(password, p)
                   for u, p in self._accounts]
        return any(matches)

    def _unauthorized(self) -> Response:
        realm = self._stats.realm.replace('"', "")
        return Response(_UNAUTHORIZED, status=401, headers={
            "cache-control": "no-cache",
            "content-type": "text/html",
            "www-authenticate": f'Basic realm="{realm}"',
        })

    def _is_admin(self, request: Request) -> bool:
        if not any(rule(request.environ) for rule in self._admin):
            return False
        origin = request.headers.get("Origin")
        return origin is None or urlsplit(origin).netloc == request.host

    def _report(self) -> FleetReport:
        return with_frontends(self._control.fleet_report(), self._site.frontends)

    def _post(self, request: Request) -> Response:
        outcome = actions.Outcome.DENY
        if self._is_admin(request):
            form = request.form
            posted = actions.AdminRequest(form.get("b", ""), tuple(form.getlist("s")),
                                          form.get("action", ""), form.get("weight", ""))
            outcome = actions.apply(posted, self._control, self._order())
        return Response(b"", status=303, headers={
            "cache-control": "no-cache",
            "content-type": "text/plain",
            "location": f"{self._stats.uri};st={outcome.value}",
        })

    def _order(self) -> list[str]:
        return [proxy.name for proxy in self._proxies(self._report())]

    def _proxies(self, report: FleetReport) -> list[Proxy]:
        site = self._site
        return proxies(report, site.order, self._scopes, site.applets, site.tcp)

    def _page(self, request: Request, options: Sequence[str]) -> Response:
        report = self._report()
        listed = self._proxies(report)
        headers = {"cache-control": "no-cache"}
        if "csv" in options:
            return Response(render_csv(listed), headers=headers, content_type="text/plain")
        refresh = self._stats.refresh
        if refresh is not None and "norefresh" not in options:
            headers["refresh"] = str(max(int(refresh), 1))
        status = next((o[3:] for o in options if o.startswith("st=")), None)
        page = Page(proxies=listed, uri=self._stats.uri, hosts=_hosts(report),
                    admin=self._is_admin(request), refresh=refresh,
                    version=self._site.version, status=status)
        return Response(render_html(page), headers=headers, content_type="text/html")


def _hosts(report: FleetReport) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for worker in report.workers:
        host = worker.rpartition(":")[0]
        counts[host] = counts.get(host, 0) + 1
    return sorted(counts.items())
