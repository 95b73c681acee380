"""A browser, as far as cookies and connections go: one keep-alive connection to the proxy,
and a cookie jar with the standard library's ``http.cookiejar`` semantics (a cookie is kept per
name + domain + path and replaced by a newer one with the same three, sent when its path
matches the URL, longer paths first, dropped when it expires).

Like a browser, it may keep several connections open (``parallel``) and use them in turn, so
that a user's requests reach more than one gunicorn worker. A browser retries an idempotent
request once on a new connection when a reused keep-alive connection turns out to be closed;
so does this one, and ``connections`` counts the connections it opened.
"""

from __future__ import annotations

import http.client
import http.cookiejar
import urllib.request
from dataclasses import dataclass

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True, slots=True)
class Page:
    """One response, read whole, and the Cookie header the browser sent for it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    sent_cookie: str | None

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for n, v in self.headers if n.lower() == lower), None)

    def all(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for n, v in self.headers if n.lower() == lower]

    @property
    def instance(self) -> str | None:
        """The Tomcat-like server's instance (route) that answered."""
        return self.header("X-Instance")

    @property
    def session(self) -> str | None:
        return self.header("X-Session")


class Browser:
    """A user's browser talking to ``host:port`` over ``parallel`` keep-alive connections,
    used in turn."""

    def __init__(self, host: str, port: int, timeout: float = 5.0, parallel: int = 1) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.policy = http.cookiejar.DefaultCookiePolicy()
        self.jar = http.cookiejar.CookieJar(self.policy)
        self.connections = 0
        self._slots: list[http.client.HTTPConnection | None] = [None] * parallel
        self._turn = 0

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for index in range(len(self._slots)):
            self._drop(index)

    def _drop(self, index: int) -> None:
        connection = self._slots[index]
        if connection is not None:
            connection.close()
            self._slots[index] = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def cookies_for(self, path: str) -> list[http.cookiejar.Cookie]:
        """Every cookie the browser would send with a request for ``path``, in sending order."""
        request = urllib.request.Request(self.url(path))
        self.jar.add_cookie_header(request)  # also tells the policy what time it is
        policy = self.policy
        found = [
            cookie
            for cookie in self.jar
            if policy.domain_return_ok(cookie.domain, request)
            and policy.path_return_ok(cookie.path, request)
            and policy.return_ok(cookie, request)
        ]
        found.sort(key=lambda cookie: len(cookie.path), reverse=True)
        return found

    def set_cookie(self, name: str, value: str, path: str) -> None:
        """Put a cookie in the jar as if this host had set it earlier (no expiry)."""
        self.jar.set_cookie(
            http.cookiejar.Cookie(
                version=0, name=name, value=value, port=None, port_specified=False,
                domain=self.host, domain_specified=False, domain_initial_dot=False,
                path=path, path_specified=True, secure=False, expires=None, discard=True,
                comment=None, comment_url=None, rest={},
            )
        )

    def cookie_header(self, path: str) -> str | None:
        """The Cookie header the browser would send for ``path`` (None: none)."""
        request = urllib.request.Request(self.url(path))
        self.jar.add_cookie_header(request)
        return request.get_header("Cookie")

    def matching(self, name: str, path: str) -> list[str]:
        """The values of every cookie ``name`` the browser would send for ``path``."""
        return [cookie.value or "" for cookie in self.cookies_for(path) if cookie.name == name]

    def get(self, path: str, headers: dict[str, str] | None = None) -> Page:
        return self.request("GET", path, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:
        """One request with the jar's cookies; the response's cookies go into the jar."""
        request = urllib.request.Request(self.url(path), method=method)
        self.jar.add_cookie_header(request)
        sent = request.get_header("Cookie")
        fields = dict(headers or {})
        if sent is not None:
            fields["Cookie"] = sent
        slot = self._turn
        self._turn = (self._turn + 1) % len(self._slots)
        response = self._exchange(slot, method, path, body, fields)
        page_body = response.read()
        self.jar.extract_cookies(response, request)
        if response.will_close:
            self._drop(slot)
        return Page(response.status, response.getheaders(), page_body, sent)

    def _exchange(
        self, slot: int, method: str, path: str, body: bytes | None, fields: dict[str, str]
    ) -> http.client.HTTPResponse:
        reused = self._slots[slot] is not None
        try:
            return self._send(slot, method, path, body, fields)
        except _STALE:
            self._drop(slot)
            if not reused or method not in ("GET", "HEAD"):
                raise
            return self._send(slot, method, path, body, fields)

    def _send(
        self, slot: int, method: str, path: str, body: bytes | None, fields: dict[str, str]
    ) -> http.client.HTTPResponse:
        connection = self._slots[slot]
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._slots[slot] = connection
            self.connections += 1
        connection.request(method, path, body=body, headers=fields)
        return connection.getresponse()
