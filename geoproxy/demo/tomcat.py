"""A Tomcat-like application server: ``python -m geoproxy.demo.tomcat --route srv1 --port 16060``.

It behaves, on the wire, like the Tomcat cluster geoproxy was born in front of:

- Sessions live in this process's memory and are lost when it restarts. A session id is 32
  upper-case hex digits, then ``.`` and the instance's route (Tomcat's ``jvmRoute``):
  ``Set-Cookie: JSESSIONID=4F2A....srv1; Path=/app; HttpOnly``.
- ``/app/login?user=NAME`` opens a session and sets the single-sign-on cookie
  ``JSESSIONIDSSO`` at ``Path=/``. That cookie is signed with a secret every instance shares
  (``--secret``), so any instance accepts it, as a clustered SSO valve does.
- Any other ``/app`` page looks for the session id in the ``JSESSIONID`` cookie (the first one
  naming a live session wins), else in a ``;jsessionid=`` path parameter. A live session: the
  page. An unknown id (or none) with a valid SSO cookie: a new session, announced with a new
  ``Set-Cookie``, and the page. Without a valid SSO cookie: 401 "Session Expired".
- Every answer says who made it: ``X-Instance`` (the route), ``X-Session`` (the session id, or
  empty) and ``X-Session-Status`` (``known``, ``new``, ``login``, ``expired``), and the page
  says the same in words. ``/health`` answers 200 for health checks.

One gevent process, no access log; SIGTERM or SIGINT stops it at once, closing keep-alive
connections (a restart loses every session, which is the point). The line
``tomcat ROUTE listening on http://HOST:PORT`` on stdout says it is ready.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import secrets
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer

SESSION_COOKIE = "JSESSIONID"
SSO_COOKIE = "JSESSIONIDSSO"
DEFAULT_SECRET = "geoproxy-demo"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass(slots=True)
class Session:
    user: str
    hits: int = 0


def _cookie_values(environ: Environ, name: str) -> list[str]:
    """Every value of cookie ``name`` in the request, in order (pywsgi joins several Cookie
    headers with ``"; "``)."""
    values = []
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        key, equal, value = part.partition("=")
        if equal and key.strip() == name:
            values.append(value.strip())
    return values


def _path_session(path: str) -> str | None:
    """The ``;jsessionid=ID`` path parameter, as Tomcat reads it when cookies are off."""
    marker = ";" + SESSION_COOKIE.lower() + "="
    at = path.lower().find(marker)
    if at < 0:
        return None
    value = path[at + len(marker) :]
    return value.split(";", 1)[0].split("/", 1)[0] or None


class TomcatApp:
    """The WSGI app of one instance named ``route``."""

    def __init__(self, route: str, secret: str, context: str = "/app") -> None:
        self.route = route
        self.context = context.rstrip("/")
        self.sessions: dict[str, Session] = {}
        self._key = secret.encode()

    # -- cookies ------------------------------------------------------------------------------

    def sso_token(self, user: str) -> str:
        signature = hmac.new(self._key, user.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{user}-{signature}"

    def sso_user(self, environ: Environ) -> str | None:
        """The user a valid SSO cookie names, or None."""
        for token in _cookie_values(environ, SSO_COOKIE):
            user, _, _ = token.rpartition("-")
            if user and hmac.compare_digest(token, self.sso_token(user)):
                return user
        return None

    def new_session(self, user: str) -> tuple[str, tuple[str, str]]:
        session_id = f"{secrets.token_hex(16).upper()}.{self.route}"
        self.sessions[session_id] = Session(user)
        cookie = f"{SESSION_COOKIE}={session_id}; Path={self.context}; HttpOnly"
        return session_id, ("Set-Cookie", cookie)

    # -- requests -----------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "/")
        if path == "/health":
            return self._answer(start_response, "200 OK", "", "ok", [])
        if path != self.context and not path.startswith(self.context + "/"):
            return self._answer(start_response, "404 Not Found", "", "not found", [])
        if path.split(";", 1)[0] == self.context + "/login":
            return self._login(environ, start_response)
        return self._page(environ, start_response, path)

    def _login(self, environ: Environ, start: StartResponse) -> Iterable[bytes]:
        user = parse_qs(environ.get("QUERY_STRING", "")).get("user", ["alice"])[0]
        if not user.isalnum():
            return self._answer(start, "400 Bad Request", "", "bad user name", [])
        session_id, cookie = self.new_session(user)
        sso = ("Set-Cookie", f"{SSO_COOKIE}={self.sso_token(user)}; Path=/; HttpOnly")
        return self._answer(start, "200 OK", session_id, "login", [cookie, sso])

    def _page(self, environ: Environ, start: StartResponse, path: str) -> Iterable[bytes]:
        wanted = _cookie_values(environ, SESSION_COOKIE) or [_path_session(path) or ""]
        for session_id in wanted:
            session = self.sessions.get(session_id)
            if session is not None:
                session.hits += 1
                return self._answer(start, "200 OK", session_id, "known", [])
        user = self.sso_user(environ)
        if user is None:
            return self._answer(start, "401 Unauthorized", "", "expired", [])
        session_id, cookie = self.new_session(user)
        self.sessions[session_id].hits += 1
        return self._answer(start, "200 OK", session_id, "new", [cookie])

    def _answer(
        self,
        start: StartResponse,
        status: str,
        session_id: str,
        how: str,
        cookies: list[tuple[str, str]],
    ) -> list[bytes]:
        session = self.sessions.get(session_id)
        if how == "expired":
            words = "Session Expired"
        elif session is not None:
            words = f"session {session_id} of {session.user}, {session.hits} hits ({how})"
        else:
            words = how
        body = (
            f"<html><body><h1>{html.escape(words)}</h1>"
            f"<p>served by instance {html.escape(self.route)}</p></body></html>\n"
        ).encode()
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("X-Instance", self.route),
            ("X-Session", session_id),
            ("X-Session-Status", how),
            *cookies,
        ]
        start(status, headers)
        return [body]


def serve(route: str, host: str, port: int, secret: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop_requested = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop_requested.set)
    gevent.signal_handler(signal.SIGINT, stop_requested.set)
    server = WSGIServer((host, port), TomcatApp(route, secret), log=None, backlog=1024)
    server.start()
    bound_host, bound_port = server.address[:2]
    print(f"tomcat {route} listening on http://{bound_host}:{bound_port}", flush=True)
    stop_requested.wait()
    # A crash, as far as clients can tell: every connection closes, every session is gone.
    server.stop(timeout=0.1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m geoproxy.demo.tomcat",
        description="A Tomcat-like application server with in-memory sessions.",
    )
    parser.add_argument("--route", required=True, help="the instance's jvmRoute (srv1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument(
        "--secret", default=DEFAULT_SECRET, help="the SSO secret every instance shares"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        serve(args.route, args.host, args.port, args.secret)
    except OSError as exc:
        print(f"tomcat {args.route}: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
