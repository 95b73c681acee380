"""What a request tracked by ``track-sc*`` rules counts, where the proxy app sees it happen
(HAProxy 2.6's ``http_ana.c`` and ``stream.c``, checked against haproxy 2.6 itself):

- a request ``deny`` counts an HTTP error at once (before the after-response rules), a
  failed ``auth`` one when the request ends; ``return``, ``redirect`` and geoproxy's own
  error pages count none;
- the server's answer counts an HTTP error when it is a 4xx, a failure when it is a 5xx but
  501 and 505, or when geoproxy answers 502/504 for a server that failed (before the
  response rules run, so they see it);
- when the request ends (its body closed, or an exception ending it), each tracked entry
  stops counting it in ``conn_cur`` and adds its bytes (request and response as forwarded;
  for geoproxy's own answers, the body) to ``bytes_in``/``bytes_out``.

- a connection's ``tcp-request connection`` counters (``SESSION_STICK``) count each request
  on it as it arrives, and its errors and failures; they stop when the connection ends.

A request that tracks nothing pays one attribute read here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from geoproxy.proxy.body import ProxiedBody
from geoproxy.rules.run import LocalReply
from geoproxy.rules.txn import ENVIRON_KEY, SESSION_STICK, Txn

Environ = dict[str, Any]
_ENDING = "geoproxy.counters_end"  # environ: the body ends the tracking itself
_AUTH = "geoproxy.counters_auth"  # environ: a failed authentication, counted at the end


def counts(txn: Txn | None) -> bool:
    """Whether the request counts in stick counters: its own, or its connection's."""
    return txn is not None and (txn.stick is not None or SESSION_STICK in txn.environ)


def count_event(txn: Txn, event: str) -> None:
    for stick in (txn.stick, txn.environ.get(SESSION_STICK)):
        if stick is not None:
            for found in stick:
                if found is not None:
                    found[0].count(found[1], event)


def start_request(environ: Environ) -> None:
    """A request on a connection whose ``tcp-request connection`` rules track counters counts
    there as it arrives (``http_req_cnt``, ``http_req_rate``), as HAProxy counts it."""
    session = environ.get(SESSION_STICK)
    if session is not None:
        for found in session:
            if found is not None:
                found[0].count(found[1], "http_req")


def count_reply(txn: Txn | None, reply: LocalReply) -> None:
    """A rule answered: a deny is an error now, a failed authentication at the end."""
    if txn is None or not counts(txn) or not reply.client_error:
        return
    if reply.client_error == "deny":
        count_event(txn, "http_err")
    else:
        txn.environ[_AUTH] = True


def count_response(txn: Txn | None, status: int) -> None:
    """The server answered ``status`` (or geoproxy answers it for a failed server)."""
    if txn is None or not counts(txn):
        return
    if 400 <= status < 500:
        count_event(txn, "http_err")
    elif 500 <= status < 600 and status not in (501, 505):
        count_event(txn, "http_fail")


def end_with_body(body: ProxiedBody, txn: Txn | None) -> None:
    """The proxied response's body ends the tracking, with the bytes it counted."""
    if txn is None or not counts(txn):
        return
    txn.environ[_ENDING] = True
    body.after_close(lambda bytes_in, bytes_out: end(txn, bytes_in, bytes_out))


def finish(result: Iterable[bytes], environ: Environ) -> Iterable[bytes]:
    """The app's answer, ending the tracking when its body is closed (unless the proxied
    body does it)."""
    txn: Txn | None = environ.get(ENVIRON_KEY)
    if txn is None or not counts(txn) or environ.get(_ENDING):
        return result
    return _Ending(result, txn)


def end(txn: Txn, bytes_in: int, bytes_out: int) -> None:
    """The request is over: each tracked entry stops counting it (once); a failed
    authentication counts as an error, in the connection's counters too."""
    if txn.environ.get(_AUTH):
        txn.environ.pop(_AUTH)
        count_event(txn, "http_err")
    stick, txn.stick = txn.stick, None
    if stick is None:
        return
    for found in stick:
        if found is not None:
            found[0].untrack(found[1], bytes_in, bytes_out)


def request_bytes(environ: Environ) -> int:
    """The request's size as forwarded: its head written out again, and its declared body."""
    size = len(environ.get("REQUEST_METHOD", "")) + len(environ.get("RAW_URI", "")) + 12
    for key, value in environ.items():
        if key.startswith("HTTP_") and isinstance(value, str):
            size += len(key) - 5 + len(value) + 4
    length = environ.get("CONTENT_LENGTH")
    return size + (int(length) if isinstance(length, str) and length.isdigit() else 0)


class _Ending:
    """An answer's body that ends the request's tracking when closed."""

    __slots__ = ("_result", "_txn", "_sent")

    def __init__(self, result: Iterable[bytes], txn: Txn) -> None:
        self._result = result
        self._txn = txn
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            self._sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            end(self._txn, request_bytes(self._txn.environ), self._sent)
