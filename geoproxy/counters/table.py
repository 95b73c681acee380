"""One worker's view of one fleet-wide stick table's counters (pure: no I/O, time from an
injected clock on the Redis server's timeline).

Rules:
1. The truth is in Redis, summed over every worker of every host; a worker never waits for
   it. Each entry here holds the fleet's values as its last sync read them (``fleet``,
   ``buckets``, ``others_use``), what a sync under way carries (``inflight*``) and what this
   worker counted since (``pending*``): a fetch reads their sum, so a worker sees its own
   events at once and the rest of the fleet's as of its last sync (``geoproxy.state.counters``
   syncs every ``SYNC_PERIOD``).
2. Rates are HAProxy's freq_ctr (``freq.py``) over periods laid end to end from the entry's
   anchor (the time of its first event, as HAProxy starts a counter's period at its first
   event): each period's events are one field, ``name@start``, that every worker increments,
   so Redis only adds. A worker that does not know the anchor yet takes its own first event's
   time and proposes it (the first proposal wins); its events then sit in a period that
   starts up to one sync later than the fleet's, and are counted in the fleet period their
   start falls in. Unlike HAProxy, an entry idle for two periods keeps its grid (HAProxy
   starts a new period at the next event); the table's ``expire`` usually drops it first.
3. ``conn_cur`` is a gauge: each worker publishes how many requests it has tracking an entry
   (``use:W``, with the time it wrote it), and a reader sums the shares written within
   ``USE_STALE_MS``; a worker republishes a non-zero share every ``USE_REFRESH_MS``, so a
   dead worker's share ages out, and is deleted by whoever sees it stale.
4. ``take`` hands the sync what to send (writes; entries read since the last sync, which the
   sync only reads, never creates; hot entries, used twice within ``HOT_WINDOW_MS``, read
   again so that a returning client meets a view one sync old); ``settle`` applies what Redis
   answered, ``restore`` puts a failed sync's changes back: nothing is lost.
5. Memory is bounded: an entry idle for the table's ``expire`` with nothing pending and no
   request tracking it is forgotten, and past ``size`` entries the least recently used idle
   one is. With ``nopurge``, a full fleet table (as the last sync saw it) takes no new entry.
6. Greenlets only switch at I/O: every method here runs to its end undisturbed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from geoproxy.counters import exchange
from geoproxy.counters.datatypes import StoreSpec
from geoproxy.counters.entry import Entry, EntryReply, SyncRecord, period_start
from geoproxy.counters.freq import FreqCtr
from geoproxy.counters.tablekey import KeyOf

_ON_TRACK = ("conn_cnt", "conn_rate", "http_req_cnt", "http_req_rate")
Clock = Callable[[], int]


class CounterTable:
    """The counters of table ``name`` in this worker (see the module rules)."""

    def __init__(self, name: str, spec: StoreSpec, *, size: int, expire_ms: int,
                 nopurge: bool, key_of: KeyOf, clock: Clock) -> None:
        self.name = name
        self.spec = spec
        self.size = size
        self.expire_ms = expire_ms
        self.nopurge = nopurge
        self.key_of = key_of
        self.clock = clock
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.changed: dict[str, Entry] = {}  # written or read since the last take
        self.held: dict[str, Entry] = {}  # tracked by a request of this worker now
        self.fleet_used = 0  # entries in the fleet's table, as the last sync answered
        self.fresh: set[str] = set()  # entries this worker created that no sync confirmed yet
        self.use_field = "use:"  # this worker's gauge share field (the sync names it)
        self._on_track = tuple(f for f in _ON_TRACK if spec.stores(f))
        self._on_connection = tuple(f for f in self._on_track if f.startswith("conn"))

    # -- finding entries ---------------------------------------------------------------------

    def entry(self, key: str) -> Entry:
        """The local entry of ``key``, made when missing (and the LRU order touched)."""
        entries = self.entries
        found = entries.get(key)
        if found is None:
            if len(entries) >= self.size:
                self._evict_one()
            found = entries[key] = Entry(key)
        else:
            entries.move_to_end(key)
        found.used_before = found.used_at
        found.used_at = self.clock()
        return found

    def lookup(self, key: str) -> Entry | None:
        """The entry of ``key`` when it is in the table (``src_*``, ``table_*``, ``in_table``):
        a read. An unknown key is asked of the fleet at the next sync, which never creates
        it; until then it is not found."""
        found = self.entry(key)
        if not found.written:
            self.changed[key] = found
        return found if found.is_known else None

    def refuses(self, entry: Entry) -> bool:
        """``nopurge``: a full table takes no new entry (rule 5)."""
        return self.nopurge and entry.exists is not True and self.used() >= self.size

    # -- events --------------------------------------------------------------------------------

    def track(self, key: str, request: bool = True) -> Entry | None:
        """A request (``request``; else a TCP connection) starts tracking ``key``
        (``track-sc*``): the gauge, ``conn_cnt``, ``conn_rate``, and for a request
        ``http_req_cnt`` and ``http_req_rate`` count it (HAProxy counts the request at once,
        as it is the first time the entry sees it). None: a full ``nopurge`` table refused
        it."""
        entry = self.entry(key)
        if self.refuses(entry):
            return None
        entry.mine += 1
        self.held[key] = entry
        now = entry.used_at
        for name in self._on_track if request else self._on_connection:
            self._add(entry, name, 1, now)
        self._written(entry)
        return entry

    def untrack(self, entry: Entry, bytes_in: int, bytes_out: int) -> None:
        """The request tracking ``entry`` ended, having moved these bytes."""
        entry.mine -= 1
        if entry.mine <= 0:
            entry.mine = 0
            self.held.pop(entry.key, None)
        now = self.clock()
        entry.used_at = now
        if bytes_in:
            self._add(entry, "bytes_in_cnt", bytes_in, now)
            self._add(entry, "bytes_in_rate", bytes_in, now)
        if bytes_out:
            self._add(entry, "bytes_out_cnt", bytes_out, now)
            self._add(entry, "bytes_out_rate", bytes_out, now)
        self._written(entry)

    def count(self, entry: Entry, event: str, amount: int = 1) -> None:
        """Count ``event`` (``http_err``, ``http_fail``, ``conn``, ``http_req``...): its
        ``_cnt`` and ``_rate`` fields, where stored."""
        now = self.clock()
        self._add(entry, f"{event}_cnt", amount, now)
        self._add(entry, f"{event}_rate", amount, now)
        self._written(entry)

    def inc_gpc(self, entry: Entry, index: int) -> int:
        """``sc-inc-gpc*``, ``sc_inc_gpc*``: the counter's rate and the counter; returns the
        counter's new value, else the rate's current period count, else 0 (HAProxy's)."""
        now = self.clock()
        name, rate = f"gpc{index}", f"gpc{index}_rate"
        answer = 0
        if rate in self.spec.rates:
            self._add(entry, rate, 1, now)
            answer = self._freq(entry, rate, now).curr
        if name in self.spec.counts:
            self._add(entry, name, 1, now)
            answer = self._count(entry, name)
        self._written(entry)
        return answer

    def clear_gpc(self, entry: Entry, index: int) -> int | None:
        """``sc_clr_gpc*``: the counter's value before it is set to 0; None when not stored."""
        name = f"gpc{index}"
        if name not in self.spec.counts:
            return None
        before = self._count(entry, name)
        entry.cleared.add(name)
        entry.pending[name] = 0
        self._written(entry)
        return before

    def set_gpt(self, entry: Entry, index: int, value: int) -> None:
        """``sc-set-gpt*``: the tag takes ``value`` (an unsigned 32-bit integer)."""
        name = f"gpt{index}"
        if name in self.spec.tags:
            entry.tags_set[name] = value & 0xFFFFFFFF
            self._written(entry)

    def _add(self, entry: Entry, name: str, amount: int, now: int) -> None:
        period = self.spec.rates.get(name)
        if period is not None:
            if not entry.anchor:
                entry.anchor = now & ~1  # HAProxy opens a counter's period at its first event
            start = period_start(entry.anchor, period, now)
            periods = entry.pending_buckets.setdefault(name, {})
            periods[start] = periods.get(start, 0) + amount
        elif name in self.spec.counts:
            pending = entry.pending
            pending[name] = pending.get(name, 0) + amount

    def _written(self, entry: Entry) -> None:
        if entry.exists is not True:
            self.fresh.add(entry.key)
        entry.written = True
        entry.exists = True
        self.changed[entry.key] = entry

    # -- reading -------------------------------------------------------------------------------

    def value(self, entry: Entry, name: str) -> int | None:
        """Field ``name`` of ``entry`` as this worker sees it now (rule 1); None when the
        table does not store it."""
        period = self.spec.rates.get(name)
        if period is not None:
            return self._rate(entry, name, period)
        if name in self.spec.counts:
            return self._count(entry, name)
        if name in self.spec.tags:
            found = entry.tags_set.get(name)
            if found is None:
                found = entry.inflight_sets.get(name)
            return found if found is not None else entry.fleet.get(name, 0)
        if name == "conn_cur" and self.spec.conn_cur:
            return self.trackers(entry)
        return None

    def _rate(self, entry: Entry, name: str, period: int) -> int:
        """HAProxy's ``read_freq_ctr_period`` over the current and previous periods (rule 2;
        ``FreqCtr.read``'s arithmetic, inline: fetches read rates on every request)."""
        now = self.clock()
        anchor = entry.anchor or now
        start = anchor + (now - anchor) // period * period if now > anchor else anchor
        curr = prev = 0
        for source in (entry.buckets, entry.inflight_buckets, entry.pending_buckets):
            periods = source.get(name)
            if periods:
                for begun, events in periods.items():
                    if begun >= start:
                        curr += events
                    elif begun >= start - period:
                        prev += events
        if not curr and prev <= 1:
            return prev
        remain = min(start + period - now, period)  # FreqCtr rule 4: a clock a little behind
        return (prev * remain + curr * period) // period

    def _freq(self, entry: Entry, name: str, now: int) -> FreqCtr:
        """Rate ``name`` of ``entry`` at ``now`` as a freq_ctr (rule 2)."""
        period = self.spec.rates[name]
        start = period_start(entry.anchor or now, period, now)
        curr = prev = 0
        for source in (entry.buckets, entry.inflight_buckets, entry.pending_buckets):
            periods = source.get(name)
            if not periods:
                continue
            for begun, events in periods.items():
                if begun >= start:
                    curr += events
                elif begun >= start - period:
                    prev += events
        return FreqCtr(start, curr, prev)

    def trackers(self, entry: Entry) -> int:
        """Requests tracking ``entry`` now: fleet-wide when ``conn_cur`` is stored, else this
        worker's."""
        if not self.spec.conn_cur:
            return entry.mine
        return entry.others_use + entry.mine

    @staticmethod
    def _count(entry: Entry, name: str) -> int:
        pending = entry.pending.get(name, 0)
        if name in entry.cleared:
            return pending
        base = entry.inflight_sets.get(name)
        if base is None:
            base = entry.fleet.get(name, 0) + entry.inflight.get(name, 0)
        return base + pending

    def used(self) -> int:
        """Entries in the table (``table_cnt``): fleet-wide as of the last sync, and those
        this worker created since."""
        return self.fleet_used + len(self.fresh)

    # -- the sync (rule 4): ``exchange.py`` --------------------------------------------------

    def take(self, limit: int) -> list[SyncRecord]:
        """At most ``limit`` records of what to send, taken out of the entries."""
        return exchange.take(self, limit)

    def settle(self, records: list[SyncRecord], replies: list[EntryReply], used: int) -> None:
        """Apply what Redis answered to the records ``take`` gave."""
        exchange.settle(self, records, replies, used)

    def restore(self, records: list[SyncRecord]) -> None:
        """A sync failed: its records' changes wait for the next one."""
        exchange.restore(self, records)

    # -- memory (rule 5) -----------------------------------------------------------------------

    def _evictable(self, entry: Entry) -> bool:
        return entry.mine == 0 and not entry.written and entry.key not in self.changed

    def _evict_one(self) -> None:
        for tries, (key, entry) in enumerate(self.entries.items()):
            if self._evictable(entry):
                del self.entries[key]
                return
            if tries >= 8:
                return  # all busy: let the table grow by the requests under way

    def forget_idle(self, now: int) -> None:
        """Forget the idle entries among the least recently used (at most 256 per call: the
        next sync goes on)."""
        if not self.expire_ms:
            return
        idle = []
        for tries, (key, entry) in enumerate(self.entries.items()):
            if now - entry.used_at < self.expire_ms or tries >= 256:
                break
            if self._evictable(entry):
                idle.append(key)
        for key in idle:
            del self.entries[key]
