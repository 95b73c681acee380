"""What a request's frontend and backend ask of its exchange beyond routing: ``option
http-buffer-request``, ``unique-id-header`` and ``compression``. The app asks once per request
(``ExchangeFeatures.request``) and gets an ``Exchange`` that adds request headers, rewrites the
response's headers and wraps its body; a proxy pair without any of them pays one dict lookup.

Rules:
1. Buffering comes first, before persistence and the server's choice (HAProxy waits for the
   body before its backend rules and load balancing); a client that fails meanwhile gets
   HAProxy's 408.
2. The unique id is made when the request is forwarded and its header goes before
   X-Forwarded-For, as HAProxy adds them.
3. Compression is decided from the request (algorithm, ``offload``), then from the response,
   as ``geoproxy.proxy.compression`` says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any, Protocol

from geoproxy.config.model import CompressionAlgorithm, Config, OriginalTo
from geoproxy.errors import ClientGone
from geoproxy.proxy.buffering import buffer_body
from geoproxy.proxy.compression import (
    CompressedBody,
    CompressionPolicy,
    choose_algorithm,
    compress_response,
)
from geoproxy.proxy.runtime import BackendRuntime, FrontendRuntime

Environ = dict[str, Any]
Headers = list[tuple[str, str]]
# the environ key of the address the client connected to (the worker sets it)
LOCAL_ADDRESS = "geoproxy.local_addr"


class _Response(Protocol):
    status: int
    http11: bool
    known_length: bool


@dataclass(slots=True)
class Exchange:
    """One request's share of the features (module doc)."""

    headers: tuple[tuple[str, str], ...] = ()  # before X-Forwarded-For
    after: tuple[tuple[str, str], ...] = ()  # after it (X-Original-To)
    refusal: int = 0  # a status to answer instead of forwarding (408 while buffering)
    policy: CompressionPolicy | None = None
    algorithm: CompressionAlgorithm | None = None
    compressing: bool = False

    def compress(self, environ: Environ, response: _Response, headers: Headers
                 ) -> Headers | None:
        """The response's headers when it is to be compressed, else None (rule 3)."""
        if self.algorithm is None or self.policy is None:
            return None
        request_ok = (environ.get("SERVER_PROTOCOL") in ("HTTP/1.1", "HTTP/2.0")
                      and environ.get("REQUEST_METHOD") != "HEAD")
        changed = compress_response(
            self.policy, self.algorithm, response.status, headers,
            (request_ok, response.http11, response.known_length))
        self.compressing = changed is not None
        return changed

    def body(self, body: Iterable[bytes]) -> Iterable[bytes]:
        if self.compressing and self.algorithm is not None:
            return CompressedBody(body, self.algorithm)
        return body


_NOTHING = Exchange()


@dataclass(frozen=True, slots=True)
class _PairSettings:
    buffer_limit: int  # 0: no buffering
    policy: CompressionPolicy | None
    originalto: tuple[str, tuple[IPv4Network | IPv6Network, ...]] | None  # header, except

    @property
    def is_empty(self) -> bool:
        return not self.buffer_limit and self.policy is None and self.originalto is None


class ExchangeFeatures:
    """The features of every frontend/backend pair of one worker, settled on first use."""

    def __init__(self, config: Config) -> None:
        self._buffer_limit = config.global_.request_limits.max_head
        self._pairs: dict[tuple[str, str], _PairSettings] = {}

    def _settings(self, frontend: FrontendRuntime, backend: BackendRuntime) -> _PairSettings:
        key = (frontend.config.name, backend.config.name)
        found = self._pairs.get(key)
        if found is None:
            buffers = frontend.config.buffer_request or backend.config.buffer_request
            found = self._pairs[key] = _PairSettings(
                self._buffer_limit if buffers else 0,
                CompressionPolicy.of(frontend.config.compression, backend.config.compression),
                _originalto(frontend.config.originalto, backend.config.originalto),
            )
        return found

    def request(self, environ: Environ, frontend: FrontendRuntime, backend: BackendRuntime
                ) -> Exchange:
        settings = self._settings(frontend, backend)
        unique_id = frontend.unique_id
        if settings.is_empty and unique_id is None:
            return _NOTHING
        exchange = Exchange()
        if settings.buffer_limit and _has_body(environ):
            try:
                buffer_body(environ, settings.buffer_limit)
            except ClientGone:
                exchange.refusal = 408
                return exchange
        if unique_id is not None:
            value = unique_id.render(environ, frontend.config.name, backend.config.name)
            if frontend.unique_id_header:
                exchange.headers = ((frontend.unique_id_header, value),)
        if settings.originalto is not None:
            exchange.after = _original_to(environ, *settings.originalto)
        policy = settings.policy
        if policy is not None:
            exchange.policy = policy
            exchange.algorithm = choose_algorithm(environ, policy)
            if exchange.algorithm is not None and policy.offload:
                environ.pop("HTTP_ACCEPT_ENCODING", None)
        return exchange


def _originalto(frontend: OriginalTo | None, backend: OriginalTo | None
                ) -> tuple[str, tuple[IPv4Network | IPv6Network, ...]] | None:
    """``option originalto`` of the pair: the backend's header name first, either's except."""
    if frontend is None and backend is None:
        return None
    header = (backend or frontend or OriginalTo()).header
    networks = tuple(ip_network(o.except_network) for o in (frontend, backend)
                     if o is not None and o.except_network)
    return header, networks


def _original_to(environ: Environ, header: str,
                 networks: tuple[IPv4Network | IPv6Network, ...]) -> tuple[tuple[str, str], ...]:
    """HAProxy 2.6 adds X-Original-To for IPv4 destinations only, outside ``except``."""
    try:
        destination = ip_address(environ.get(LOCAL_ADDRESS) or environ.get("SERVER_NAME", ""))
    except ValueError:
        return ()
    if destination.version != 4 or any(destination in net for net in networks):
        return ()
    return ((header, str(destination)),)


def _has_body(environ: Environ) -> bool:
    return "HTTP_TRANSFER_ENCODING" in environ or (environ.get("CONTENT_LENGTH") or "0") != "0"
