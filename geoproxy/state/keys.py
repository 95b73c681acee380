"""Every Redis key geoproxy uses. The README's key table is written from this module.

Rules:
1. Every key of one backend carries the hash tag ``{backend}``, so that one script touches one
   cluster slot (DESIGN.md: the scripts also run on Redis Cluster).
2. Names read well in ``redis-cli``: ``gp:{app}:inflight`` is the in-flight count of every
   server of backend ``app``.
3. Nothing outside ``geoproxy/state`` builds a key by hand.
4. A server's routing state (``gp:{B}:srv:S``) is written only when it changes: every worker
   of the fleet is told of each write to it (``watcher.py``), so what is written on every
   check or every statistics flush lives in ``gp:{B}:stat:S``.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "gp"

# A set of backend names, so that `geoproxy state` finds every backend without KEYS/SCAN.
BACKENDS = f"{PREFIX}:backends"

# Redis keeps a small hash as one flat list (listpack), where an update walks every field: at
# 64 servers an HINCRBY costs twice what it costs in a hash table. A field longer than 64 bytes
# turns a hash into a hash table for good, so the in-flight hashes of backends of more than
# PAD_ABOVE servers (the backend's, and each worker's) carry this field, at 0 (every reader
# skips names starting with '#').
PAD_ABOVE = 16
HASHTABLE_PAD = "#hashtable: a field this long keeps the hash a hash table, O(1) to update"
# A hash of frontend names -> kind, so that tools without the configuration list every one.
FRONTENDS = f"{PREFIX}:frontends"
# A hash of the frontends an operator disabled (Runtime API 'disable frontend') -> 'disabled'.
FRONTENDS_ADMIN = f"{PREFIX}:frontends:admin"


@dataclass(frozen=True, slots=True)
class BackendKeys:
    """The keys of one backend, built once per process."""

    backend: str
    servers: str  # ZSET: server name -> configuration order
    inflight: str  # HASH: server name -> requests in flight, fleet-wide
    total: str  # HASH: server name -> requests ever acquired
    workers: str  # ZSET: worker id -> heartbeat expiry (ms, Redis clock)
    worker_prefix: str  # HASH per worker: prefix + worker id -> {server: in flight}
    queue: str  # ZSET: tickets of balanced requests waiting for a slot -> arrival sequence
    queue_deadlines: str  # HASH: ticket -> deadline (ms, Redis clock)
    queue_sequence: str  # STRING counter: the next arrival sequence
    stats: str  # HASH: the backend's statistics (rates, maxima, per-frontend counters)
    queue_prefix: str  # the server queue keys' prefix (the server name follows)
    server_prefix: str  # the server hashes' prefix (the server name follows)

    def server_queue(self, name: str) -> str:
        """ZSET: tickets of persistent requests waiting for server ``name``."""
        return self.queue_prefix + name

    def server(self, name: str) -> str:
        """HASH of one server's configuration and state (address, weight, admin, oper...):
        what routing reads. Nothing writes it but a change (rule 4)."""
        return self.server_prefix + name

    def server_stats(self, name: str) -> str:
        """HASH of what is written about one server all the time: its checks' details and its
        traffic statistics (rule 4)."""
        return f"{PREFIX}:{{{self.backend}}}:stat:{name}"

    def check_lease(self, name: str) -> str:
        """STRING: the id of the process that checks server ``name`` now, with a short TTL."""
        return f"{PREFIX}:{{{self.backend}}}:chk:{name}"

    def worker(self, worker_id: str) -> str:
        return self.worker_prefix + worker_id

    def resolver_lease(self, name: str) -> str:
        """STRING: the id of the process that resolves the FQDN of server ``name`` (and of the
        servers sharing it) now, with a short TTL."""
        return f"{PREFIX}:{{{self.backend}}}:dns:{name}"


def backend_keys(backend: str) -> BackendKeys:
    tag = f"{PREFIX}:{{{backend}}}"
    return BackendKeys(
        backend=backend,
        servers=f"{tag}:servers",
        inflight=f"{tag}:inflight",
        total=f"{tag}:total",
        workers=f"{tag}:workers",
        worker_prefix=f"{tag}:w:",
        queue=f"{tag}:queue",
        queue_deadlines=f"{tag}:qdeadline",
        queue_sequence=f"{tag}:qseq",
        stats=f"{tag}:stats",
        queue_prefix=f"{tag}:queue:",
        server_prefix=f"{tag}:srv:",
    )


def stick_key(table: str, key: str) -> str:
    """STRING: the server name a stick-table entry sends to, with the table's expiry as TTL."""
    return f"{PREFIX}:{{{table}}}:stick:{key}"


def counter_key(table: str, key: str) -> str:
    """HASH: the stick counters of table ``table``'s entry ``key``, summed over the fleet."""
    return f"{PREFIX}:{{{table}}}:sc:{key}"


def counter_index(table: str) -> str:
    """ZSET: the entries of table ``table``'s counters, scored by their last write."""
    return f"{PREFIX}:{{{table}}}:sc-keys"


# The key table the README documents: (pattern, type, meaning).
KEY_TABLE: tuple[tuple[str, str, str], ...] = (
    (BACKENDS, "SET", "names of every backend a geoproxy process has registered"),
    (
        FRONTENDS,
        "HASH",
        "frontend (or listen) name -> 'proxy', or 'stats' for a listener that serves only the "
        "stats page; written by each geoproxy master at start-up and reload",
    ),
    (
        FRONTENDS_ADMIN,
        "HASH",
        "frontend name -> 'disabled' while an operator keeps it disabled ('disable frontend' "
        "on the Runtime API): no host accepts new connections on its binds; no field: enabled",
    ),
    ("gp:{B}:servers", "ZSET", "server names of backend B, scored by configuration order"),
    (
        "gp:{B}:srv:S",
        "HASH",
        "server S of backend B, what routing reads, written only when it changes (every "
        "worker is told of each write within milliseconds): addr, weight, maxconn, backup, "
        "admin (ready, drain or maint), oper (up, down, going-up, going-down or stopping), "
        "health (the check counter), shutdowns (how many times an operator asked to cut its "
        "sessions), downs, last_change, up_since, downtime_ms; with 'resolvers', resolved "
        "(the address DNS gave, '' for none: MAINT); nolb (1 while http-check "
        "disable-on-404 sees a 404)",
    ),
    (
        "gp:{B}:stat:S",
        "HASH",
        "what is written about server S all the time: its checks (check_code, check_desc, "
        "check_ms, checked_at, check_ok, check_fail, failed_checks), passive observation "
        "(observed_errors, consecutive_errors, fastinter), resolved_at, and traffic "
        "statistics (bytes_in, bytes_out, err_conn, err_resp, retries, redispatches, "
        "max_inflight, max_queued, rate_cur/rate_prev/rate_sec/rate_max: sessions per second)",
    ),
    (
        "gp:{B}:chk:S",
        "STRING",
        "the worker id that runs server S's health checks now (a lease with a 3 s TTL)",
    ),
    (
        "gp:{B}:dns:S",
        "STRING",
        "the worker id that resolves the FQDN of server S (and of the servers sharing it: a "
        "server-template) now, writing 'resolved' and 'resolved_at' into their hashes (a lease "
        "with a 3 s TTL)",
    ),
    (
        "gp:{B}:inflight",
        "HASH",
        "server -> requests in flight now, summed over every worker (a backend of more than 16 "
        "servers also has a field '#hashtable: ...' at 0, which keeps updates O(1))",
    ),
    (
        "gp:{B}:total",
        "HASH",
        "server -> requests sent to it since the keys were created (each worker adds its "
        "count with its statistics, once a second)",
    ),
    ("gp:{B}:workers", "ZSET", "live worker ids, scored by heartbeat expiry (ms, Redis clock)"),
    (
        "gp:{T}:stick:K",
        "STRING",
        "stick table T (the backend declaring it), entry K (a session id, an address...): the "
        "server name, expiring with the table's 'expire'",
    ),
    (
        "gp:{T}:sc:K",
        "HASH",
        "stick counters of table T (the proxy declaring it), entry K, summed over every worker "
        "(each adds its counts with HINCRBY every 50 ms): counters (http_req_cnt, conn_cnt, "
        "gpc0...) and tags (gpt0) as integers; a rate (http_req_rate...) as one field per "
        "period, NAME@START: the events of the period that began at START (ms; periods laid "
        "end to end from a, the entry's first event); use:W, the requests of worker W tracking "
        "it now, 'count@ms' (conn_cur sums those under 3 s old); t, its last write (ms). "
        "Expires with the table's 'expire'",
    ),
    (
        "gp:{T}:sc-keys",
        "ZSET",
        "the entries of table T's counters, scored by their last write (ms): table_cnt, and "
        "past the table's 'size' the least recently written are evicted",
    ),
    (
        "gp:{B}:queue",
        "ZSET",
        "tickets of requests waiting for a slot (maxconn) in backend B, by arrival order",
    ),
    (
        "gp:{B}:queue:S",
        "ZSET",
        "tickets of persistent requests waiting for server S, by arrival order",
    ),
    ("gp:{B}:qdeadline", "HASH", "ticket -> when its request stops waiting (timeout queue)"),
    ("gp:{B}:qseq", "STRING", "arrival counter of backend B's queues"),
    (
        "gp:{B}:stats",
        "HASH",
        "backend B's statistics: max_inflight, max_queued, session rate fields (as in the "
        "server hash), and fe:F:sessions, fe:F:bytes_in, fe:F:bytes_out, fe:F:rate_* for what "
        "frontend F sent to B",
    ),
    (
        "gp:{B}:w:W",
        "HASH",
        "server -> requests worker W (HOST:PID, or HOST:PID#N after a Redis stall) has in "
        "flight (0, or no field, once they ended); given back by the reaper if W dies (a "
        "backend of more than 16 servers: also the '#hashtable: ...' field at 0)",
    ),
)
