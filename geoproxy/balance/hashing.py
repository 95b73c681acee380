"""``balance source | uri | url_param | hdr(<name>)`` with ``hash-type`` (HAProxy's
``get_server_sh/uh/ph/hh`` in ``backend.c``, on ``lb_map.c`` or ``lb_chash.c``).

Rules:
1. The key, as HAProxy takes it:
   - source: the client address; IPv4 as its 32-bit value, IPv6 as the XOR of its four 32-bit
     words. The hash function is NOT applied (HAProxy hashes addresses this way); only
     ``avalanche`` is.
   - uri: the request target as received, cut to ``len`` bytes, then before the ``?`` unless
     ``whole``, then before the slash that starts level ``depth + 1`` ("one level is counted
     for each slash").
   - url_param NAME: the value after ``NAME=`` in the query string (case-sensitive, first
     occurrence, up to the next ``&``; an empty value is still a value).
   - hdr(NAME): the header's first value (up to a comma outside quotes, blanks trimmed, as
     HAProxy's header lookup returns it); with ``use_domain_only``, only the label before the
     last dot ("haproxy.1wt.eu" -> "1wt").
   These keys go through the configured function (sdbm by default), then ``avalanche`` if set.
2. A missing key (no parameter, absent or empty header, an address that is not IP) falls back
   to round robin on the same table, as HAProxy does: the next map slot (map-based) or the
   next ring point (consistent).
3. hash-type map-based: the slot is ``hash % total weight`` in HAProxy's server map over the
   eligible servers and their configured weights; when that set changes, most keys move.
   hash-type consistent: the ring of ``chash.py`` over the eligible servers and their current
   weights; only the keys of a server that comes or goes move.
4. The ranking is FIRST_WITH_ROOM: the hashed server, then the others (along the map; by
   distance on the ring), so a full server hands the request on rather than queueing it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from socket import AF_INET, AF_INET6, inet_pton
from typing import Protocol

from geoproxy.balance.chash import PointKeys, Ring
from geoproxy.balance.hashfuncs import MASK32, HashFn, full_hash, octets
from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.tables import Binder, Order, Table, names, names_and_weights
from geoproxy.balance.view import ServerView
from geoproxy.balance.weightmap import StaticMapBuilder
from geoproxy.config.model import HashType
from geoproxy.httptext import find_unquoted

MEMO_LIMIT = 4096

KeyHash = Callable[[RequestKeys], int | None]


class HashTable(Table, Protocol):
    """A table a hash can be looked up in: a server map or a ring."""

    def order_for_hash(self, h: int) -> Order: ...


# --------------------------------------------------------------------------------------------
# Keys (rule 1)


def source_key(address: str) -> int | None:
    """The 32-bit value HAProxy hashes for a client address; None when not an IP address."""
    try:
        packed = inet_pton(AF_INET, address)
    except (OSError, ValueError):
        try:
            packed = inet_pton(AF_INET6, address)
        except (OSError, ValueError):
            return None
    value = int.from_bytes(packed, "big")
    h = 0
    while value:
        h ^= value & MASK32
        value >>= 32
    return h


def uri_key(uri: bytes, length: int, depth: int, whole: bool) -> bytes:
    """The part of the request target ``balance uri [len N] [depth N] [whole]`` hashes."""
    if length:
        uri = uri[:length]
    if not whole:
        mark = uri.find(b"?")
        if mark >= 0:
            uri = uri[:mark]
    if depth:
        slash = -1
        for _ in range(depth + 1):
            slash = uri.find(b"/", slash + 1)
            if slash < 0:
                break
        if slash >= 0:
            uri = uri[:slash]
    return uri


def url_param_value(uri: str, name: str) -> str | None:
    """The value of query parameter ``name`` in the request target, or None when absent."""
    mark = uri.find("?")
    if mark < 0:
        return None
    prefix = name + "="
    for part in uri[mark + 1 :].split("&"):
        if part.startswith(prefix):
            return part[len(prefix) :]
    return None


_LWS = " \t\r\n"


def first_value(raw: str) -> str:
    """A header's first value as HAProxy's ``http_find_header`` returns it (not ``full``)."""
    raw = raw.lstrip(_LWS)
    if '"' not in raw:
        return raw.split(",", 1)[0].rstrip(_LWS)
    return raw[: find_unquoted(raw, ",")].rstrip(_LWS)


def main_domain(host: str) -> str:
    """``use_domain_only``: the label before the last dot, as HAProxy scans it backwards."""
    last = host.rfind(".", 1)
    if last < 1:
        return host
    return host[host.rfind(".", 0, last - 1) + 1 : last]


# --------------------------------------------------------------------------------------------
# Key hashers: RequestKeys -> 32-bit hash or None (rule 2)


class _Memo:
    """Remembers the hash of recent keys: clients, URIs and header values repeat."""

    __slots__ = ("_hashes",)

    def __init__(self) -> None:
        self._hashes: dict[str, int | None] = {}

    def remember(self, text: str, h: int | None) -> int | None:
        if len(self._hashes) >= MEMO_LIMIT:
            self._hashes.clear()
        self._hashes[text] = h
        return h


class SourceHash(_Memo):
    __slots__ = ("_avalanche",)

    def __init__(self, avalanche: bool) -> None:
        super().__init__()
        self._avalanche = avalanche

    def __call__(self, request: RequestKeys) -> int | None:
        address = request.source
        if address in self._hashes:
            return self._hashes[address]
        h = source_key(address)
        if h is not None and self._avalanche:
            h = full_hash(h)
        return self.remember(address, h)


class _TextHash(_Memo):
    """Hashes the bytes of a text key with the configured function and modifier."""

    __slots__ = ("_function", "_avalanche")

    def __init__(self, function: HashFn, avalanche: bool) -> None:
        super().__init__()
        self._function = function
        self._avalanche = avalanche

    def digest(self, key: bytes) -> int:
        h = self._function(key)
        return full_hash(h) if self._avalanche else h


class UriHash(_TextHash):
    __slots__ = ("_length", "_depth", "_whole")

    def __init__(
        self, function: HashFn, avalanche: bool, length: int, depth: int, whole: bool
    ) -> None:
        super().__init__(function, avalanche)
        self._length, self._depth, self._whole = length, depth, whole

    def __call__(self, request: RequestKeys) -> int | None:
        uri = request.uri
        if uri in self._hashes:
            return self._hashes[uri]
        key = uri_key(octets(uri), self._length, self._depth, self._whole)
        return self.remember(uri, self.digest(key))


class UrlParamHash(_TextHash):
    __slots__ = ("_name",)

    def __init__(self, function: HashFn, avalanche: bool, name: str) -> None:
        super().__init__(function, avalanche)
        self._name = name

    def __call__(self, request: RequestKeys) -> int | None:
        uri = request.uri
        if uri in self._hashes:
            return self._hashes[uri]
        value = url_param_value(uri, self._name)
        return self.remember(uri, None if value is None else self.digest(octets(value)))


class HeaderHash(_TextHash):
    __slots__ = ("_name", "_domain_only")

    def __init__(self, function: HashFn, avalanche: bool, name: str, domain_only: bool) -> None:
        super().__init__(function, avalanche)
        self._name = name.lower()
        self._domain_only = domain_only

    def __call__(self, request: RequestKeys) -> int | None:
        raw = request.header(self._name)
        if raw is None:
            return None
        if raw in self._hashes:
            return self._hashes[raw]
        value = first_value(raw)
        if not value:
            return self.remember(raw, None)
        if self._domain_only:
            value = main_domain(value)
        return self.remember(raw, self.digest(octets(value)))


# --------------------------------------------------------------------------------------------
# The policy (rules 2 to 4)


class HashPolicy:
    """A hashing ``balance`` algorithm on a map-based or consistent table."""

    __slots__ = ("_key_hash", "_binder", "_position")

    def __init__(self, key_hash: KeyHash, method: HashType, configured: Mapping[str, int]) -> None:
        """``configured`` maps each server name to its configured weight (map-based only)."""
        self._key_hash = key_hash
        self._binder: Binder[HashTable]
        if method is HashType.CONSISTENT:
            self._binder = Binder(PickMode.FIRST_WITH_ROOM, names_and_weights, _ring_builder())
        else:
            builder = StaticMapBuilder(configured)
            self._binder = Binder(PickMode.FIRST_WITH_ROOM, names, builder)
        self._position = 0

    @property
    def needs_request(self) -> bool:
        return True

    def rank(self, eligible: Sequence[ServerView], request: RequestKeys | None) -> Ranking:
        bound = self._binder.bind(eligible)
        table = bound.table
        h = None if request is None else self._key_hash(request)
        if h is None:
            slot = self._position % len(table)
            self._position = slot + 1
            return bound.ranking(table.order_from_slot(slot))
        return bound.ranking(table.order_for_hash(h))


def _ring_builder() -> Callable[[Sequence[ServerView]], HashTable]:
    point_keys = PointKeys()

    def build(eligible: Sequence[ServerView]) -> HashTable:
        return Ring(names_and_weights(eligible), point_keys)

    return build
