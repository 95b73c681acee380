"""geoproxy's gunicorn worker: the gevent worker, with HAProxy's client-side timeouts and answers.

Why a worker of our own (a subclass of gunicorn's ``GeventWorker``, the WSGI app unchanged):
1. HAProxy's ``timeout http-request`` answers 408 when a request's head does not arrive in time;
   ``timeout http-keep-alive`` closes an idle keep-alive connection silently; ``timeout client``
   bounds every read of the client. gunicorn has one keepalive timeout and answers nothing.
2. Answers to malformed requests are HAProxy's pages (400, 414, 431), not gunicorn's.
3. A proxy relays the server's headers: gunicorn's own ``Server`` and ``Date`` headers would
   duplicate or contradict them, so responses carry only what the server (or geoproxy) sent,
   plus the framing headers HAProxy adds.
4. A response that the server cut mid-body cuts the client connection quietly, as HAProxy does;
   it is not an application crash with a traceback.
5. The client's Connection header is a list of tokens (RFC 9110 7.6.1): ``close`` anywhere in
   it closes the connection after the response, and an HTTP/1.0 client stays kept alive when
   ``keep-alive`` is anywhere in it. gunicorn reads only a header that is exactly one token.
"""

from __future__ import annotations

import socket
from typing import Any

import gevent
from gevent.socket import wait_read
from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http import wsgi
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.workers.ggevent import GeventWorker

from geoproxy.errors import ClientGone, UpstreamError
from geoproxy.proxy.errorpages import builtin_page

_PAGE_400 = builtin_page(400).raw
_PAGE_408 = builtin_page(408).raw
_PAGE_414 = builtin_page(414).raw
_PAGE_431 = builtin_page(431).raw
_PAGE_500 = builtin_page(500).raw


class ProxyRequest(Request):  # type: ignore[misc]
    """gunicorn's request, reading the Connection header as a list of tokens (rule 5)."""

    def should_close(self) -> bool:
        if self.must_close or self.method == "CONNECT":
            return True
        tokens: set[str] = set()
        for name, value in self.headers:
            if name == "CONNECTION":
                tokens.update(token.strip(" \t").lower() for token in value.split(","))
        if "close" in tokens:
            return True
        return self.version < (1, 1) and "keep-alive" not in tokens


class ProxyRequestParser(RequestParser):  # type: ignore[misc]
    mesg_class = ProxyRequest


class ProxyResponse(wsgi.Response):  # type: ignore[misc]
    """gunicorn's response writer without ``Server``/``Date``, always ``HTTP/1.1``, with
    ``connection`` only where HAProxy writes it (close, or keep-alive to an HTTP/1.0 client),
    after the response's own headers as HAProxy places it; a ``Connection: close`` from the app
    (HAProxy's own 400 page, an errorfile) is obeyed and stays where the app put it."""

    _own_connection = False
    headers: list[tuple[str, str]]
    headers_sent: bool

    def process_headers(self, headers: list[tuple[str, str]]) -> None:
        own = next(
            (
                index
                for index, (name, value) in enumerate(headers)
                if name.lower() == "connection" and "close" in value.lower()
            ),
            None,
        )
        super().process_headers(headers)
        if own is not None:
            self.must_close = self._own_connection = True
            # gunicorn dropped it with the other hop-by-hop headers: put it back in its place
            kept_before = sum(1 for name, _ in headers[:own] if not util.is_hoppish(name))
            self.headers.insert(kept_before, (headers[own][0], "close"))

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        lines = [f"HTTP/1.1 {self.status}\r\n"]
        if self.chunked:
            lines.append("transfer-encoding: chunked\r\n")
        lines += [f"{name}: {value}\r\n" for name, value in self.headers]
        if not self._own_connection:
            if self.should_close():
                lines.append("connection: close\r\n")
            elif self.req.version < (1, 1):
                lines.append("connection: keep-alive\r\n")
        lines.append("\r\n")
        util.write(self.sock, "".join(lines).encode("latin-1"))
        self.headers_sent = True


def _page_for(error: Exception) -> bytes:
    if isinstance(error, http_errors.LimitRequestLine):
        return _PAGE_414
    if isinstance(error, http_errors.LimitRequestHeaders):
        return _PAGE_431
    return _PAGE_400


class ProxyWorker(GeventWorker):  # type: ignore[misc]
    """A gunicorn gevent worker serving ``geoproxy.proxy.app.ProxyApp``."""

    alive: bool

    def handle(self, listener: socket.socket, client: socket.socket, addr: Any) -> None:
        client.setblocking(True)
        timeouts = self.wsgi.client_timeouts(listener.getsockname())
        parser = ProxyRequestParser(self.cfg, client, addr)
        listener_name = listener.getsockname()
        first = True
        try:
            # A connection accepted while the worker is told to stop still gets its first
            # request served (with connection: close): the client sent it to a live listener.
            while first or self.alive:
                if not first and not _has_buffered(parser):
                    try:
                        wait_read(client.fileno(), timeout=timeouts.idle)
                    except TimeoutError:
                        return  # idle keep-alive connection: closed silently, as HAProxy
                client.settimeout(None)
                try:
                    with gevent.Timeout(timeouts.request_head):
                        request = next(parser)
                except gevent.Timeout:
                    _send_quietly(client, _PAGE_408)
                    return
                client.settimeout(timeouts.client)
                if not self.handle_request(listener_name, request, client, addr):
                    return
                first = False
        except (StopIteration, http_errors.NoMoreData):
            pass
        except http_errors.ParseException as error:
            _send_quietly(client, _page_for(error))
        except OSError:
            pass  # the client went away or stalled past timeout client: nothing to answer
        except Exception:
            self.log.exception("unexpected error on a client connection")
        finally:
            _close(client)

    def handle_request(self, listener_name: Any, req: Any, sock: socket.socket, addr: Any) -> bool:
        """Serve one request; True when the connection may serve another."""
        response = None
        try:
            response, environ = wsgi.create(
                req, sock, addr, listener_name, self.cfg, response_class=ProxyResponse
            )
            environ["wsgi.multithread"] = True
            _join_cookie_fields(environ, req.headers)
            self.nr += 1
            if self.nr >= self.max_requests and self.alive:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            if not self.alive:
                response.force_close()
            body = self.wsgi(environ, response.start_response)
            try:
                for chunk in body:
                    response.write(chunk)
                response.close()
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            return not response.should_close()
        except (UpstreamError, ClientGone, http_errors.NoMoreData, OSError):
            return False  # cut: the connection closes without a word, as HAProxy cuts it
        except http_errors.ParseException:
            raise
        except Exception:
            if response is None or not response.headers_sent:
                self.log.exception("error while serving a request")
                _send_quietly(sock, _PAGE_500)
            else:
                self.log.exception("error after the response started; connection cut")
            return False

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, http_errors.ParseException):
            _send_quietly(client, _page_for(exc))
        else:
            self.log.exception("error on a client connection", exc_info=exc)
            _send_quietly(client, _PAGE_500)


def _join_cookie_fields(environ: dict[str, Any], headers: list[tuple[str, str]]) -> None:
    """Several Cookie fields become one joined by ``"; "`` (RFC 6265 5.4, RFC 9113 8.2.3), not
    by the ``","`` gunicorn joins every repeated field with: a server reads ``a=1,b=2`` as one
    cookie ``a`` whose value is ``1,b=2``."""
    cookie = environ.get("HTTP_COOKIE")
    if cookie is not None and "," in cookie:
        values = [value for name, value in headers if name == "COOKIE"]
        if len(values) > 1:
            environ["HTTP_COOKIE"] = "; ".join(values)


def _has_buffered(parser: Any) -> bool:
    """True when the client already pipelined bytes of its next request."""
    buffer = parser.unreader.buf
    buffer.seek(0, 2)
    return bool(buffer.tell())


def _send_quietly(client: socket.socket, data: bytes) -> None:
    try:
        client.settimeout(1.0)
        client.sendall(data)
    except OSError:
        pass


def _close(client: socket.socket) -> None:
    try:
        client.close()
    except OSError:
        pass
